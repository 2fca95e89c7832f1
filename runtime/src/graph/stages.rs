//! Stages: the graph cut at keyed exchanges. A stage starts at a source or at an exchange and
//! holds the operators reachable from there without crossing another; each parallel
//! instance of a stage (a task) runs its own instances of those operators. An operator that
//! needs records of one key together (or every record together) starts its own stage behind
//! an exchange, which routes each record to the instance of its key.

use super::{Graph, NodeId, Port, Routing};

/// The stages and exchanges of a graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub stages: Vec<Stage>,
    pub exchanges: Vec<Exchange>,
}

/// Where a stage's records come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A source (a share of it, or a partition).
    Source(usize),
    /// An exchange; records arrive for one of its operator's inputs.
    Exchange(usize),
}

/// One stage: its entry, its operators in an order where each comes after what it reads, and
/// where every record goes next.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The source's name, or the name of the operator behind the exchange.
    pub name: String,
    pub entry: Entry,
    /// Graph operator indexes; a task's operators are in this order.
    pub operators: Vec<usize>,
    /// Where records from a source entry go (an exchange entry feeds `operators[0]`).
    pub entry_targets: Vec<Target>,
    /// `output_targets[position][port]`: where the records an operator emits on `port` go.
    pub output_targets: Vec<Vec<Vec<Target>>>,
    /// The stage runs one instance: its exchange gathers every record.
    pub single: bool,
    /// An exchange stage whose operator takes its records in event-time order.
    pub event_time_order: bool,
}

/// Where records go from a point of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The operator at this position of the stage, on this input.
    Operator {
        position: usize,
        input: u32,
    },
    Sink(usize),
    /// Through an exchange to its operator's stage, for this input of the operator.
    Exchange {
        exchange: usize,
        input: u32,
    },
}

/// A keyed exchange in front of an operator: how it routes, the stage it feeds, and the
/// stages that send through it.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub operator: usize,
    /// `Key(fields)` or `Single`.
    pub routing: Routing,
    pub stage: usize,
    pub upstream_stages: Vec<usize>,
}

impl Plan {
    /// Cuts `graph` into stages: one per source, one per exchange.
    pub fn of(graph: &Graph) -> Plan {
        let order = graph.topological_order();
        let exchanges: Vec<Exchange> = order
            .iter()
            .filter(|operator| graph.operators[**operator].routing != Routing::Any)
            .enumerate()
            .map(|(index, operator)| Exchange {
                operator: *operator,
                routing: graph.operators[*operator].routing.clone(),
                stage: graph.sources.len() + index,
                upstream_stages: Vec::new(),
            })
            .collect();
        let entries = (0..graph.sources.len()).map(Entry::Source).chain((0..exchanges.len()).map(Entry::Exchange));
        let stages: Vec<Stage> = entries.map(|entry| stage(graph, &order, &exchanges, entry)).collect();
        let mut plan = Plan { stages, exchanges };
        plan.link_upstream_stages();
        plan
    }

    fn link_upstream_stages(&mut self) {
        for (index, stage) in self.stages.iter().enumerate() {
            let targets = stage.entry_targets.iter().chain(stage.output_targets.iter().flatten().flatten());
            for target in targets {
                if let Target::Exchange { exchange, .. } = target
                    && !self.exchanges[*exchange].upstream_stages.contains(&index)
                {
                    self.exchanges[*exchange].upstream_stages.push(index);
                }
            }
        }
    }

    /// Stages in an order where each comes before every stage it sends to (start them in
    /// reverse, so that every stage's downstream is running before it).
    pub fn upstream_first(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.stages.len()).filter(|stage| matches!(self.stages[*stage].entry, Entry::Source(_))).collect();
        let mut index = 0;
        while index < order.len() {
            for exchange in &self.exchanges {
                let ready = exchange.upstream_stages.iter().all(|upstream| order.contains(upstream));
                if ready && !order.contains(&exchange.stage) {
                    order.push(exchange.stage);
                }
            }
            index += 1;
        }
        order
    }

    /// The exchange in front of `operator`, if it has one.
    pub fn exchange_of(&self, operator: usize) -> Option<usize> {
        self.exchanges.iter().position(|exchange| exchange.operator == operator)
    }
}

/// The stage starting at `entry`: the operators it reaches without crossing an exchange, and
/// where each output goes.
fn stage(graph: &Graph, order: &[usize], exchanges: &[Exchange], entry: Entry) -> Stage {
    let exchange_of = |operator: usize| exchanges.iter().position(|exchange| exchange.operator == operator);
    let (name, mut members, single, event_time_order) = match entry {
        Entry::Source(source) => (graph.sources[source].clone(), Vec::new(), false, false),
        Entry::Exchange(exchange) => {
            let operator = &graph.operators[exchanges[exchange].operator];
            let single = exchanges[exchange].routing == Routing::Single;
            (operator.name.clone(), vec![exchanges[exchange].operator], single, operator.event_time_order)
        }
    };
    let present = |node: NodeId, members: &[usize]| match (node, entry) {
        (NodeId::Source(source), Entry::Source(own)) => source == own,
        (NodeId::Operator(operator), _) => members.contains(&operator),
        (NodeId::Source(_), Entry::Exchange(_)) => false,
    };
    for operator in order {
        let node = &graph.operators[*operator];
        if node.routing == Routing::Any && !members.contains(operator) && node.inputs.iter().any(|input| present(input.node, &members)) {
            members.push(*operator);
        }
    }
    let targets = |port: Port| -> Vec<Target> {
        let readers = graph.readers(port);
        let to_operators = readers.operators.iter().filter_map(|(reader, input)| match exchange_of(*reader) {
            Some(exchange) => Some(Target::Exchange { exchange, input: *input }),
            None => members.iter().position(|member| member == reader).map(|position| Target::Operator { position, input: *input }),
        });
        to_operators.chain(readers.sinks.iter().map(|sink| Target::Sink(*sink))).collect()
    };
    let entry_targets = match entry {
        Entry::Source(source) => targets(Port { node: NodeId::Source(source), output: 0 }),
        Entry::Exchange(_) => Vec::new(),
    };
    let output_targets = members.iter().map(|operator| graph.ports_of(NodeId::Operator(*operator)).map(&targets).collect()).collect();
    Stage { name, entry, operators: members, entry_targets, output_targets, single, event_time_order }
}

#[cfg(test)]
mod tests {
    use sluice_sdk::FieldPath;

    use super::*;
    use crate::graph::{OperatorNode, SinkNode};

    fn operator(name: &str, inputs: Vec<Port>, routing: Routing) -> OperatorNode {
        OperatorNode { name: name.into(), inputs, side_outputs: Vec::new(), routing, event_time_order: false }
    }

    fn main(node: NodeId) -> Port {
        Port { node, output: 0 }
    }

    #[test]
    fn a_keyed_operator_starts_a_stage_behind_an_exchange_and_stateless_ones_follow_what_they_read() {
        let key = Routing::Key(vec![FieldPath::parse("category").unwrap()]);
        let graph = Graph {
            sources: vec!["clicks".into()],
            operators: vec![
                operator("orders", vec![main(NodeId::Source(0))], Routing::Any),
                operator("per-minute", vec![main(NodeId::Operator(0))], key.clone()),
                operator("shape", vec![main(NodeId::Operator(1))], Routing::Any),
            ],
            sinks: vec![
                SinkNode { name: "raw".into(), inputs: vec![main(NodeId::Source(0))] },
                SinkNode { name: "results".into(), inputs: vec![main(NodeId::Operator(2))] },
            ],
        };
        let plan = Plan::of(&graph);
        assert_eq!(plan.stages.len(), 2);
        let first = &plan.stages[0];
        assert_eq!((first.operators.as_slice(), first.entry), (&[0][..], Entry::Source(0)));
        assert_eq!(first.entry_targets, vec![Target::Operator { position: 0, input: 0 }, Target::Sink(0)]);
        assert_eq!(first.output_targets, vec![vec![vec![Target::Exchange { exchange: 0, input: 0 }]]]);
        let second = &plan.stages[1];
        assert_eq!((second.operators.as_slice(), second.entry, second.single), (&[1, 2][..], Entry::Exchange(0), false));
        assert_eq!(second.output_targets[0][0], vec![Target::Operator { position: 1, input: 0 }]);
        assert_eq!(second.output_targets[1][0], vec![Target::Sink(1)]);
        assert_eq!(plan.exchanges[0].upstream_stages, vec![0]);
        assert_eq!(plan.upstream_first(), vec![0, 1]);
    }

    #[test]
    fn a_union_of_two_sources_runs_a_stateless_operator_in_both_stages() {
        let graph = Graph {
            sources: vec!["a".into(), "b".into()],
            operators: vec![
                operator("clean", vec![main(NodeId::Source(0)), main(NodeId::Source(1))], Routing::Any),
                operator("total", vec![main(NodeId::Operator(0))], Routing::Single),
            ],
            sinks: vec![SinkNode { name: "out".into(), inputs: vec![main(NodeId::Operator(1))] }],
        };
        let plan = Plan::of(&graph);
        assert_eq!(plan.stages[0].operators, vec![0]);
        assert_eq!(plan.stages[1].entry_targets, vec![Target::Operator { position: 0, input: 1 }]);
        assert!(plan.stages[2].single);
        assert_eq!(plan.exchanges[0].upstream_stages, vec![0, 1]);
    }
}
