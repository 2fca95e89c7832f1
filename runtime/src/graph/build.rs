//! Building the graph from a pipeline file: what each node reads (defaults included), then,
//! with what each operator's plugin declares, ports, routing, cycles and unread outputs. Every
//! problem is a located diagnostic.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use sluice_sdk::{Distribution, FieldPath, OperatorInfo};
use toml::Spanned;

use super::{Graph, NodeId, OperatorNode, Port, Routing, SinkNode};
use crate::config::{Diagnostics, InputRef, LoadedPipeline, Name, RecordOrder, SinkConfig};
use crate::pipeline::OutputReaders;

/// One thing a node reads, as written (or implied by the file's order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub node: NodeId,
    /// The side output read, by name; `None` for the main output.
    pub output: Option<Name>,
    /// Where the reference is written (for implied inputs, the reader's name).
    pub span: Range<usize>,
}

/// What every operator and sink reads, by node; side outputs still by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedInputs {
    pub operators: Vec<Vec<Reference>>,
    pub sinks: Vec<Vec<Reference>>,
}

impl ResolvedInputs {
    /// The inputs of `operator` as an operator's `init` is told them: `node` or `node.output`.
    pub fn input_names(&self, pipeline: &LoadedPipeline, operator: usize) -> Vec<String> {
        let names = NodeNames::of(pipeline);
        self.operators.get(operator).map_or_else(Vec::new, |references| {
            references
                .iter()
                .map(|reference| {
                    let node = names.name(reference.node);
                    reference.output.as_ref().map_or_else(|| node.to_owned(), |output| format!("{node}.{output}"))
                })
                .collect()
        })
    }

    /// Who reads the records `operator` writes: other operators (or sinks that read keys from
    /// fields), which may use their field indexes, or only sinks that do not.
    pub fn readers_of(&self, pipeline: &LoadedPipeline, operator: usize) -> OutputReaders {
        let reads_operator = |references: &Vec<Reference>| references.iter().any(|reference| reference.node == NodeId::Operator(operator));
        let keyed_sink_reads =
            |(references, sink): (&Vec<Reference>, &Spanned<SinkConfig>)| sink.get_ref().key().is_some() && reads_operator(references);
        if self.operators.iter().any(reads_operator) || self.sinks.iter().zip(&pipeline.config.sinks).any(keyed_sink_reads) {
            OutputReaders::MayReadIndexes
        } else {
            OutputReaders::IgnoreIndexes
        }
    }
}

/// Resolves every `inputs` to nodes; a node without `inputs` reads the operator before it
/// (the first operator, and sinks of a pipeline without operators: every source; sinks: the
/// last operator).
pub fn resolve_inputs(pipeline: &LoadedPipeline) -> (ResolvedInputs, Diagnostics) {
    let names = NodeNames::of(pipeline);
    let mut found = Diagnostics::default();
    let mut report = |span: Range<usize>, message: String| found.push(pipeline.text.diagnostic(Some(span), message));
    let config = &pipeline.config;
    let all_sources = |span: &Range<usize>| {
        (0..config.sources.len())
            .map(|source| Reference { node: NodeId::Source(source), output: None, span: span.clone() })
            .collect::<Vec<_>>()
    };
    let mut resolved = ResolvedInputs::default();
    for (index, operator) in config.operators.iter().enumerate() {
        let operator = operator.get_ref();
        let what = format!("operator \"{}\"", operator.name.get_ref());
        let implied = operator.name.span();
        let references = match &operator.inputs {
            Some(inputs) => {
                let listed = inputs.get_ref().iter().map(|input| (input.get_ref(), input.span()));
                names.resolve(listed, inputs.span(), &what, &mut report)
            }
            None if index == 0 => all_sources(&implied),
            None => vec![Reference { node: NodeId::Operator(index - 1), output: None, span: implied }],
        };
        resolved.operators.push(references);
    }
    for sink in &config.sinks {
        let what = format!("sink \"{}\"", sink.get_ref().name());
        let implied = sink.span();
        let references = match sink.get_ref().inputs() {
            Some(inputs) => {
                // A sink's `inputs` keep no positions: found in the file, so that an error
                // points at the entry rather than at the `[[sinks]]` header.
                let spans = crate::config::refused_value::array_element_spans(pipeline.text.parsed(), sink.span(), "inputs");
                let listed = inputs.iter().enumerate().map(|(at, input)| (input, spans.get(at).cloned().unwrap_or_else(|| sink.span())));
                names.resolve(listed, sink.span(), &what, &mut report)
            }
            None if config.operators.is_empty() => all_sources(&implied),
            None => vec![Reference { node: NodeId::Operator(config.operators.len() - 1), output: None, span: implied }],
        };
        resolved.sinks.push(references);
    }
    (resolved, found)
}

/// The names of the nodes that can be read.
struct NodeNames {
    nodes: HashMap<String, NodeId>,
    sinks: BTreeSet<String>,
    sources: Vec<String>,
    operators: Vec<String>,
}

impl NodeNames {
    fn of(pipeline: &LoadedPipeline) -> NodeNames {
        let config = &pipeline.config;
        let sources: Vec<String> = config.sources.iter().map(|source| source.get_ref().name()).collect();
        let operators: Vec<String> = config.operators.iter().map(|operator| operator.get_ref().name.get_ref().to_string()).collect();
        let mut nodes = HashMap::new();
        // The first of two nodes with one name wins; the duplicate is reported elsewhere.
        for (index, name) in operators.iter().enumerate().rev() {
            nodes.insert(name.clone(), NodeId::Operator(index));
        }
        for (index, name) in sources.iter().enumerate().rev() {
            nodes.insert(name.clone(), NodeId::Source(index));
        }
        let sinks = config.sinks.iter().map(|sink| sink.get_ref().name()).collect();
        NodeNames { nodes, sinks, sources, operators }
    }

    fn name(&self, node: NodeId) -> &str {
        match node {
            NodeId::Source(source) => &self.sources[source],
            NodeId::Operator(operator) => &self.operators[operator],
        }
    }

    fn resolve<'a>(
        &self,
        inputs: impl ExactSizeIterator<Item = (&'a InputRef, Range<usize>)>,
        list_span: Range<usize>,
        what: &str,
        report: &mut impl FnMut(Range<usize>, String),
    ) -> Vec<Reference> {
        if inputs.len() == 0 {
            report(list_span, format!("{what} has no input: `inputs` is empty; name what it reads"));
        }
        let mut references: Vec<Reference> = Vec::with_capacity(inputs.len());
        for (input, span) in inputs {
            let Some(reference) = self.resolve_one(input, span, what, report) else { continue };
            // Reading one output twice would give every record to the reader twice.
            if references.iter().any(|known| known.node == reference.node && known.output == reference.output) {
                report(reference.span, listed_twice_message(what, input));
                continue;
            }
            references.push(reference);
        }
        references
    }

    fn resolve_one(
        &self,
        reference: &InputRef,
        span: Range<usize>,
        what: &str,
        report: &mut impl FnMut(Range<usize>, String),
    ) -> Option<Reference> {
        let node_name = reference.node.as_str();
        let Some(node) = self.nodes.get(node_name).copied() else {
            let kind = if self.sinks.contains(node_name) {
                "is a sink, and sinks cannot be read"
            } else {
                "is not a source or an operator of this pipeline"
            };
            report(span, format!("{what}: input \"{reference}\" {kind}"));
            return None;
        };
        if let (NodeId::Source(_), Some(_)) = (node, &reference.output) {
            report(span, format!("{what}: input \"{reference}\": source \"{node_name}\" has no side outputs; read it as \"{node_name}\""));
            return None;
        }
        Some(Reference { node, output: reference.output.clone(), span })
    }
}

/// What a graph check found: the graph, when it could be built, and its problems.
#[derive(Debug, Default)]
pub struct GraphCheck {
    pub graph: Option<Graph>,
    pub problems: Diagnostics,
}

/// Builds the graph once every operator's declaration is known (`None` for an operator whose
/// plugin could not be checked: its problem is reported elsewhere, and no graph is built).
pub fn build_graph(pipeline: &LoadedPipeline, resolved: &ResolvedInputs, infos: &[Option<OperatorInfo>]) -> GraphCheck {
    let mut builder = Builder { pipeline, found: Diagnostics::default() };
    let Some(infos) = infos.iter().map(Option::as_ref).collect::<Option<Vec<&OperatorInfo>>>() else {
        return GraphCheck { graph: None, problems: builder.found };
    };
    let names = NodeNames::of(pipeline);
    let operators = infos
        .iter()
        .enumerate()
        .map(|(index, info)| {
            let routing = builder.routing(index, info);
            OperatorNode {
                name: names.operators[index].clone(),
                inputs: builder.ports(&resolved.operators[index], &infos, &names),
                side_outputs: info.outputs.clone(),
                event_time_order: builder.event_time_order(index, &routing),
                routing,
            }
        })
        .collect();
    let sinks = pipeline
        .config
        .sinks
        .iter()
        .zip(&resolved.sinks)
        .map(|(sink, references)| SinkNode { name: sink.get_ref().name(), inputs: builder.ports(references, &infos, &names) })
        .collect();
    let graph = Graph { sources: names.sources.clone(), operators, sinks };
    builder.check_cycles(&graph, resolved);
    builder.check_unread(&graph);
    let problems = builder.found;
    let graph = problems.is_empty().then_some(graph);
    GraphCheck { graph, problems }
}

struct Builder<'p> {
    pipeline: &'p LoadedPipeline,
    found: Diagnostics,
}

impl Builder<'_> {
    fn report(&mut self, span: Range<usize>, message: String) {
        self.found.push(self.pipeline.text.diagnostic(Some(span), message));
    }

    /// The ports of `references`: side outputs by their index among the operator's.
    fn ports(&mut self, references: &[Reference], infos: &[&OperatorInfo], names: &NodeNames) -> Vec<Port> {
        let mut ports = Vec::with_capacity(references.len());
        for reference in references {
            let output = match (&reference.output, reference.node) {
                (None, _) => 0,
                (Some(output), NodeId::Operator(operator)) => {
                    let declared = &infos[operator].outputs;
                    match declared.iter().position(|name| name == output.as_str()) {
                        Some(position) => position as u32 + 1,
                        None => {
                            let node = names.name(reference.node);
                            let has = match declared.as_slice() {
                                [] if output.as_str() == "late" => "it has no side outputs with this configuration (`window-aggregate` \
                                                                     sends late records to one named \"late\" when its config has \
                                                                     `late = \"side-output\"`)"
                                    .to_owned(),
                                [] => "it has no side outputs with this configuration (an operator's docs say which it declares, and \
                                       when)"
                                    .to_owned(),
                                outputs => format!("its side outputs are {}", quoted(outputs)),
                            };
                            self.report(
                                reference.span.clone(),
                                format!("input \"{node}.{output}\": operator \"{node}\" has no output \"{output}\": {has}"),
                            );
                            continue;
                        }
                    }
                }
                (Some(_), NodeId::Source(_)) => continue,
            };
            ports.push(Port { node: reference.node, output });
        }
        ports
    }

    /// Whether the operator takes its records in event-time order: only behind an exchange,
    /// where records of a key meet from several instances (a plugin that processes each
    /// record alone has none, unless `key_by` gives it one).
    fn event_time_order(&mut self, index: usize, routing: &Routing) -> bool {
        let operator = self.pipeline.config.operators[index].get_ref();
        let Some(order) = &operator.order else { return false };
        if *order.get_ref() == RecordOrder::Arrival {
            return false;
        }
        if *routing == Routing::Any {
            let name = operator.name.get_ref();
            self.report(
                order.span(),
                format!(
                    "operator \"{name}\": `order = \"event-time\"` orders the records that meet through a keyed exchange, and its \
                     plugin processes each record alone (no exchange): remove `order`, or give `key_by` to route records by key"
                ),
            );
            return false;
        }
        true
    }

    /// The operator's routing: its plugin's declaration, narrowed by `key_by` where given.
    fn routing(&mut self, index: usize, info: &OperatorInfo) -> Routing {
        let operator = self.pipeline.config.operators[index].get_ref();
        let name = operator.name.get_ref();
        let declared = match &info.distribution {
            Distribution::Any => Routing::Any,
            Distribution::Single => Routing::Single,
            // The runtime checked the plugin's key fields when it answered `init`.
            Distribution::Key(fields) => Routing::Key(fields.iter().filter_map(|field| FieldPath::parse(field).ok()).collect()),
        };
        let Some(key_by) = &operator.key_by else { return declared };
        let fields = key_by.get_ref();
        if fields.is_empty() {
            self.report(
                key_by.span(),
                format!("operator \"{name}\": `key_by` is empty: name the fields records are routed by, or remove it"),
            );
            return declared;
        }
        if let Some(repeated) = fields.iter().enumerate().find_map(|(position, field)| fields[..position].contains(field).then_some(field))
        {
            self.report(key_by.span(), format!("operator \"{name}\": key_by names {repeated} twice: name each field once"));
            return declared;
        }
        match &declared {
            Routing::Any => Routing::Key(fields.clone()),
            Routing::Single => {
                self.report(
                    key_by.span(),
                    format!(
                        "operator \"{name}\": its plugin needs every record in one instance, which `key_by` would split: remove `key_by`"
                    ),
                );
                declared
            }
            Routing::Key(needed) => {
                let stray: Vec<String> = fields.iter().filter(|field| !needed.contains(field)).map(ToString::to_string).collect();
                if stray.is_empty() {
                    return Routing::Key(fields.clone());
                }
                let needed: Vec<String> = needed.iter().map(ToString::to_string).collect();
                self.report(
                    key_by.span(),
                    format!(
                        "operator \"{name}\": key_by {} is not among the fields its plugin keeps state by ({}): records of one group \
                         could reach different instances; route by some of those fields, or remove `key_by`",
                        quoted(&stray),
                        quoted(&needed)
                    ),
                );
                declared
            }
        }
    }

    /// Operators that read themselves, directly or not, are reported once per cycle.
    fn check_cycles(&mut self, graph: &Graph, resolved: &ResolvedInputs) {
        let mut reported = BTreeSet::new();
        for start in 0..graph.operators.len() {
            if let Some(cycle) = cycle_through(graph, start)
                && reported.insert(cycle.iter().copied().collect::<BTreeSet<_>>())
            {
                let path: Vec<&str> = cycle.iter().chain(cycle.first()).map(|operator| graph.operators[*operator].name.as_str()).collect();
                // At the input that closes the cycle: `start` reads the cycle's last operator.
                let closing = cycle.last().map(|last| NodeId::Operator(*last));
                let references = &resolved.operators[start];
                let at = references.iter().find(|reference| Some(reference.node) == closing).or(references.first());
                let span = at.map_or(0..0, |reference| reference.span.clone());
                self.report(span, format!("operator \"{}\": its inputs form a cycle: {}", graph.operators[start].name, path.join(" → ")));
            }
        }
    }

    /// Sources and operators nothing reads, and side outputs nothing reads.
    fn check_unread(&mut self, graph: &Graph) {
        let config = &self.pipeline.config;
        // A node whose name an earlier one has cannot be read by it: that name is reported as
        // given twice, and saying that nothing reads the node would be a second, wrong error.
        let names = NodeNames::of(self.pipeline);
        let named_by_another = |node: NodeId, name: &str| names.nodes.get(name).is_some_and(|named| *named != node);
        for (index, source) in config.sources.iter().enumerate() {
            if named_by_another(NodeId::Source(index), &source.get_ref().name()) {
                continue;
            }
            if graph.readers(Port { node: NodeId::Source(index), output: 0 }).is_empty() {
                let name = source.get_ref().name();
                self.report(
                    source.span(),
                    format!("source \"{name}\": nothing reads it: name it in the `inputs` of an operator or a sink"),
                );
            }
        }
        for (index, operator) in graph.operators.iter().enumerate() {
            if named_by_another(NodeId::Operator(index), &operator.name) {
                continue;
            }
            let span = config.operators[index].get_ref().name.span();
            let read: Vec<bool> = graph.ports_of(NodeId::Operator(index)).map(|port| !graph.readers(port).is_empty()).collect();
            if read.iter().all(|read| !read) {
                self.report(
                    span,
                    format!("operator \"{}\": nothing reads it: name it in the `inputs` of an operator or a sink", operator.name),
                );
                continue;
            }
            for (side, name) in operator.side_outputs.iter().enumerate() {
                if !read[side + 1] {
                    self.report(
                        span.clone(),
                        format!(
                            "operator \"{}\" sends records to its side output \"{name}\", which nothing reads: add \"{}.{name}\" to the \
                             `inputs` of a sink or an operator",
                            operator.name, operator.name
                        ),
                    );
                }
            }
        }
    }
}

/// A cycle of operators through `start`, in reading order, if there is one.
fn cycle_through(graph: &Graph, start: usize) -> Option<Vec<usize>> {
    let mut path = vec![start];
    let mut visited = BTreeSet::new();
    find_cycle(graph, start, start, &mut path, &mut visited).then(|| {
        // `path` runs from `start` upstream; reading order is the reverse.
        path.reverse();
        path.rotate_right(1);
        path
    })
}

fn find_cycle(graph: &Graph, start: usize, operator: usize, path: &mut Vec<usize>, visited: &mut BTreeSet<usize>) -> bool {
    for input in &graph.operators[operator].inputs {
        let NodeId::Operator(upstream) = input.node else { continue };
        if upstream == start {
            return true;
        }
        if visited.insert(upstream) {
            path.push(upstream);
            if find_cycle(graph, start, upstream, path, visited) {
                return true;
            }
            path.pop();
        }
    }
    false
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|name| format!("\"{name}\"")).collect::<Vec<_>>().join(", ")
}

/// The refusal of `input` listed twice in the `inputs` of `what` (`sink "out"`, `operator "j"`):
/// a sink needs it once; an operator that means to read it on two inputs (a self-join) needs
/// one of them through an operator of its own.
fn listed_twice_message(what: &str, input: &InputRef) -> String {
    if what.starts_with("sink ") {
        return format!("{what}: input \"{input}\" is listed twice; each record would be written twice: list it once");
    }
    format!(
        "{what}: input \"{input}\" is listed twice; each record would be read twice (to read it on two inputs, as a self-join \
         does, route one of them through an operator of its own, such as a `filter` every record passes: \
         `{{ field = \"KEY\", op = \"exists\" }}` on the join key)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An operator read by another operator (through its main or a side output), or by a sink
    /// that reads a key from fields, may have its indexes read; one read only by sinks that
    /// write values as they are may not.
    #[test]
    fn operators_read_only_by_sinks_without_keys_have_no_index_readers() {
        let text = r#"
            [pipeline]
            name = "readers"
            [[sources]]
            name = "orders"
            type = "stdin"
            [[operators]]
            name = "clean"
            plugin = "p.wasm"
            [[operators]]
            name = "split"
            plugin = "p.wasm"
            inputs = ["clean"]
            [[operators]]
            name = "late"
            plugin = "p.wasm"
            inputs = ["split.rest"]
            [[operators]]
            name = "keyed"
            plugin = "p.wasm"
            inputs = ["clean"]
            [[operators]]
            name = "last"
            plugin = "p.wasm"
            inputs = ["clean"]
            [[sinks]]
            type = "stdout"
            inputs = ["split", "late", "last"]
            [[sinks]]
            type = "stdout"
            name = "by-key"
            inputs = ["keyed"]
            key = ["id"]
        "#;
        let pipeline = LoadedPipeline::parse("readers.toml".into(), text.into()).expect("a valid pipeline");
        let (resolved, unresolved) = resolve_inputs(&pipeline);
        assert!(unresolved.is_empty(), "{unresolved:?}");
        let readers: Vec<OutputReaders> = (0..5).map(|operator| resolved.readers_of(&pipeline, operator)).collect();
        use OutputReaders::{IgnoreIndexes, MayReadIndexes};
        assert_eq!(readers, [MayReadIndexes, MayReadIndexes, IgnoreIndexes, MayReadIndexes, IgnoreIndexes]);
    }
}
