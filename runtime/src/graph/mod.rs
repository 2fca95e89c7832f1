//! The pipeline as a graph: its nodes (sources, operators, sinks), what each reads, and the
//! stages its work splits into at keyed exchanges. Built from a pipeline file and what each
//! operator's plugin declares; nothing here runs (the wiring is in `crate::topology`).
//!
//! A node reads others through `inputs` (`"node"` or `"node.output"`); without `inputs` a
//! file is a chain in file order. An operator whose plugin needs records of one key together
//! (or every record together) starts a new stage behind a keyed exchange, so that state is
//! never split across parallel instances.

mod build;
mod render;
mod stages;

use sluice_sdk::FieldPath;

pub use build::{ResolvedInputs, build_graph, resolve_inputs};
pub use render::{render_dot, render_text};
pub use stages::{Entry, Exchange, Plan, Stage, Target};

/// A node that can be read: a source or an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeId {
    Source(usize),
    Operator(usize),
}

/// One output of a node: 0 is the main output, `i + 1` an operator's side output `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    pub node: NodeId,
    pub output: u32,
}

/// How an operator's records are spread over its parallel instances.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Routing {
    /// Any instance takes any record: the operator runs in the stage of what it reads.
    Any,
    /// Records with equal values at these fields meet one instance (a keyed exchange).
    Key(Vec<FieldPath>),
    /// Every record meets one instance.
    Single,
}

/// The pipeline's nodes and edges.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub sources: Vec<String>,
    pub operators: Vec<OperatorNode>,
    pub sinks: Vec<SinkNode>,
}

/// An operator: what it reads (in the order of its `inputs`), its side outputs, its routing.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorNode {
    pub name: String,
    pub inputs: Vec<Port>,
    pub side_outputs: Vec<String>,
    pub routing: Routing,
    /// Records reach it in event-time order (`order = "event-time"`), through its exchange.
    pub event_time_order: bool,
}

/// A sink and what it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkNode {
    pub name: String,
    pub inputs: Vec<Port>,
}

/// The graph as the console draws it: every node with its kind, and every edge (a side
/// output's edge carries its name).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct GraphView {
    pub nodes: Vec<NodeView>,
    pub edges: Vec<EdgeView>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeView {
    pub name: String,
    /// source, operator or sink.
    pub kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EdgeView {
    pub from: String,
    /// source or operator.
    pub from_kind: &'static str,
    pub to: String,
    /// operator or sink (a sink may share its name with a source or an operator).
    pub to_kind: &'static str,
    /// The side output read, if not the main output.
    pub output: Option<String>,
}

impl Graph {
    /// Nodes and edges for the console.
    pub fn view(&self) -> GraphView {
        let mut view = GraphView::default();
        let node = |name: &str, kind| NodeView { name: name.to_owned(), kind };
        view.nodes.extend(self.sources.iter().map(|source| node(source, "source")));
        view.nodes.extend(self.operators.iter().map(|operator| node(&operator.name, "operator")));
        view.nodes.extend(self.sinks.iter().map(|sink| node(&sink.name, "sink")));
        let reads = self.operators.iter().map(|operator| (&operator.name, "operator", &operator.inputs));
        for (reader, to_kind, inputs) in reads.chain(self.sinks.iter().map(|sink| (&sink.name, "sink", &sink.inputs))) {
            for port in inputs {
                let output = (port.output > 0).then(|| self.port_name(*port).rsplit('.').next().unwrap_or_default().to_owned());
                let from_kind = match port.node {
                    NodeId::Source(_) => "source",
                    NodeId::Operator(_) => "operator",
                };
                view.edges.push(EdgeView { from: self.node_name(port.node).to_owned(), from_kind, to: reader.clone(), to_kind, output });
            }
        }
        view
    }

    /// `node` or `node.output`, as written in `inputs`.
    pub fn port_name(&self, port: Port) -> String {
        let node = self.node_name(port.node);
        match port.output {
            0 => node.to_owned(),
            output => match &port.node {
                NodeId::Operator(operator) => {
                    let side = self.operators[*operator].side_outputs.get(output as usize - 1).map_or("?", String::as_str);
                    format!("{node}.{side}")
                }
                NodeId::Source(_) => format!("{node}.{output}"),
            },
        }
    }

    pub fn node_name(&self, node: NodeId) -> &str {
        match node {
            NodeId::Source(source) => &self.sources[source],
            NodeId::Operator(operator) => &self.operators[operator].name,
        }
    }

    /// The operators in an order where each comes after everything it reads (the graph
    /// has no cycle once built).
    pub fn topological_order(&self) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.operators.len());
        let mut state = vec![Visit::New; self.operators.len()];
        for operator in 0..self.operators.len() {
            self.visit(operator, &mut state, &mut order);
        }
        order
    }

    fn visit(&self, operator: usize, state: &mut [Visit], order: &mut Vec<usize>) {
        if state[operator] != Visit::New {
            return;
        }
        state[operator] = Visit::Open;
        for input in &self.operators[operator].inputs {
            if let NodeId::Operator(upstream) = input.node {
                self.visit(upstream, state, order);
            }
        }
        state[operator] = Visit::Done;
        order.push(operator);
    }

    /// The positions (in readers' inputs) at which each node output is read: by operators
    /// (operator, input index) and by sinks.
    pub fn readers(&self, port: Port) -> Readers {
        let mut readers = Readers::default();
        for (operator, node) in self.operators.iter().enumerate() {
            for (input, read) in node.inputs.iter().enumerate() {
                if *read == port {
                    readers.operators.push((operator, input as u32));
                }
            }
        }
        for (sink, node) in self.sinks.iter().enumerate() {
            if node.inputs.contains(&port) {
                readers.sinks.push(sink);
            }
        }
        readers
    }

    /// The outputs of `node`: the main output and an operator's side outputs.
    pub fn ports_of(&self, node: NodeId) -> impl Iterator<Item = Port> {
        let side = match node {
            NodeId::Operator(operator) => self.operators[operator].side_outputs.len() as u32,
            NodeId::Source(_) => 0,
        };
        (0..=side).map(move |output| Port { node, output })
    }
}

/// Who reads one node output.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Readers {
    /// (operator, index in its inputs).
    pub operators: Vec<(usize, u32)>,
    pub sinks: Vec<usize>,
}

impl Readers {
    pub fn is_empty(&self) -> bool {
        self.operators.is_empty() && self.sinks.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    Open,
    Done,
}
