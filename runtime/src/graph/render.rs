//! The graph as text and as Graphviz DOT, for `sluice validate --graph`.

use std::fmt::Write as _;

use super::{Entry, Graph, NodeId, Plan, Port, Routing, Target};

/// One edge of a stage: from a node's output to an operator, a sink or an exchange.
struct Edge {
    from: Port,
    /// The node reached: an operator's name, or `sink:<name>`.
    to: String,
    /// The routing of the exchange the edge goes through, if it does.
    exchange: Option<Routing>,
}

/// Each stage with its edges: `a → b` within a stage, `a ⇒ b (exchange by key [...])` between.
pub fn render_text(pipeline: &str, graph: &Graph, plan: &Plan) -> String {
    let mut text = format!("pipeline \"{pipeline}\": {} stage(s)\n", plan.stages.len());
    for (number, stage) in plan.stages.iter().enumerate() {
        let from = match stage.entry {
            Entry::Source(source) => format!("reads source \"{}\"", graph.sources[source]),
            Entry::Exchange(exchange) => format!("behind an exchange {}", routing_text(&plan.exchanges[exchange].routing)),
        };
        let _ = writeln!(text, "stage {} \"{}\": {from}", number + 1, stage.name);
        for edge in stage_edges(graph, plan, number) {
            let to = edge.to.strip_prefix("sink:").map_or_else(|| edge.to.clone(), |sink| format!("sink \"{sink}\""));
            let _ = match &edge.exchange {
                Some(routing) => writeln!(text, "  {} ⇒ {to} (exchange {})", graph.port_name(edge.from), routing_text(routing)),
                None => writeln!(text, "  {} → {to}", graph.port_name(edge.from)),
            };
        }
    }
    text
}

/// A `digraph` with one cluster per stage; exchange edges are bold and labelled with their
/// routing, side-output edges with the output's name.
pub fn render_dot(pipeline: &str, graph: &Graph, plan: &Plan) -> String {
    let mut dot = format!("digraph \"{}\" {{\n  rankdir=LR;\n", escape(pipeline));
    for (number, stage) in plan.stages.iter().enumerate() {
        let _ = writeln!(dot, "  subgraph \"cluster_{number}\" {{\n    label=\"stage {}: {}\";", number + 1, escape(&stage.name));
        if let Entry::Source(source) = stage.entry {
            let _ = writeln!(dot, "    \"{}\" [shape=ellipse];", escape(&graph.sources[source]));
        }
        for operator in &stage.operators {
            let _ = writeln!(dot, "    \"{}\" [shape=box];", escape(&graph.operators[*operator].name));
        }
        dot.push_str("  }\n");
    }
    for sink in &graph.sinks {
        let _ = writeln!(dot, "  \"sink:{}\" [shape=house, label=\"{}\"];", escape(&sink.name), escape(&sink.name));
    }
    let mut lines = Vec::new();
    for number in 0..plan.stages.len() {
        for edge in stage_edges(graph, plan, number) {
            let line = dot_edge(graph, &edge);
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    for line in lines {
        let _ = writeln!(dot, "  {line}");
    }
    dot.push_str("}\n");
    dot
}

/// Every edge leaving the entry or an operator of stage `number`.
fn stage_edges(graph: &Graph, plan: &Plan, number: usize) -> Vec<Edge> {
    let stage = &plan.stages[number];
    let edge = |from: Port, target: &Target| match *target {
        Target::Operator { position, .. } => Edge { from, to: graph.operators[stage.operators[position]].name.clone(), exchange: None },
        Target::Sink(sink) => Edge { from, to: format!("sink:{}", graph.sinks[sink].name), exchange: None },
        Target::Exchange { exchange, .. } => {
            let exchange = &plan.exchanges[exchange];
            Edge { from, to: graph.operators[exchange.operator].name.clone(), exchange: Some(exchange.routing.clone()) }
        }
    };
    let mut edges = Vec::new();
    if let Entry::Source(source) = stage.entry {
        let from = Port { node: NodeId::Source(source), output: 0 };
        edges.extend(stage.entry_targets.iter().map(|target| edge(from, target)));
    }
    for (position, operator) in stage.operators.iter().enumerate() {
        for (output, targets) in stage.output_targets[position].iter().enumerate() {
            let from = Port { node: NodeId::Operator(*operator), output: output as u32 };
            edges.extend(targets.iter().map(|target| edge(from, target)));
        }
    }
    edges
}

fn dot_edge(graph: &Graph, edge: &Edge) -> String {
    let mut labels = Vec::new();
    if let (NodeId::Operator(operator), output @ 1..) = (edge.from.node, edge.from.output) {
        labels.push(graph.operators[operator].side_outputs[output as usize - 1].clone());
    }
    let mut attributes = Vec::new();
    if let Some(routing) = &edge.exchange {
        labels.push(routing_text(routing));
        attributes.push("style=bold".to_owned());
    }
    if !labels.is_empty() {
        attributes.insert(0, format!("label=\"{}\"", escape(&labels.join("; "))));
    }
    let attributes = if attributes.is_empty() { String::new() } else { format!(" [{}]", attributes.join(", ")) };
    format!("\"{}\" -> \"{}\"{attributes};", escape(graph.node_name(edge.from.node)), escape(&edge.to))
}

fn routing_text(routing: &Routing) -> String {
    match routing {
        Routing::Key(fields) => format!("by key [{}]", fields.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
        Routing::Single => "to one instance".into(),
        Routing::Any => "to any instance".into(),
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
