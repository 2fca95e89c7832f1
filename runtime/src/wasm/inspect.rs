//! Describing any component: its imports and exports with their types, in WIT-like syntax.

use wasmtime::Engine;
use wasmtime::component::types::{ComponentItem, Type};

use super::WasmEngine;
use super::plugin::{PluginError, root_cause};

/// A component's world as lines of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentDescription {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Compiles `bytes` and lists what the component imports and exports.
pub fn describe_component(engine: &WasmEngine, path: &std::path::Path, bytes: &[u8]) -> Result<ComponentDescription, PluginError> {
    super::plugin::not_webassembly(path, bytes)?;
    // Through the compiled cache, as loading a plugin goes: compiling a Python or JavaScript
    // component takes seconds.
    let component = super::compiled_cache::compile_component(engine.engine(), super::Digest::of(bytes), bytes)
        .map_err(|error| PluginError::NotAComponent { path: path.to_owned(), reason: root_cause(&error) })?;
    let engine = engine.engine();
    let kind = component.component_type();
    let mut names = TypeNames::default();
    for (_, item) in kind.imports(engine) {
        names.collect(engine, &item.ty);
    }
    let imports = kind.imports(engine).map(|(name, item)| names.describe_item(engine, name, &item.ty)).collect();
    let exports = kind.exports(engine).map(|(name, item)| names.describe_item(engine, name, &item.ty)).collect();
    Ok(ComponentDescription { imports, exports })
}

/// Names of the types the component's imported interfaces declare, so that signatures
/// read `func(batch: batch) -> output` rather than spelling every record out.
#[derive(Default)]
struct TypeNames {
    named: Vec<(Type, String)>,
}

impl TypeNames {
    fn collect(&mut self, engine: &Engine, item: &ComponentItem) {
        if let ComponentItem::ComponentInstance(instance) = item {
            for (name, member) in instance.exports(engine) {
                if let ComponentItem::Type(ty) = &member.ty {
                    self.named.push((ty.clone(), name.to_owned()));
                }
            }
        }
    }

    fn name_of(&self, ty: &Type) -> Option<&str> {
        self.named.iter().find(|(named, _)| named == ty).map(|(_, name)| name.as_str())
    }

    fn describe_item(&self, engine: &Engine, name: &str, item: &ComponentItem) -> String {
        match item {
            ComponentItem::Type(ty) => format!("type {name} = {}", spell(ty, self)),
            other => describe_item(engine, name, other, self),
        }
    }
}

fn describe_item(engine: &Engine, name: &str, item: &ComponentItem, names: &TypeNames) -> String {
    match item {
        ComponentItem::ComponentFunc(function) => {
            let params: Vec<String> = function.params().map(|(param, ty)| format!("{param}: {}", type_name(&ty, names))).collect();
            let results: Vec<String> = function.results().map(|ty| type_name(&ty, names)).collect();
            let arrow = if results.is_empty() { String::new() } else { format!(" -> {}", results.join(", ")) };
            format!("{name}: func({}){arrow}", params.join(", "))
        }
        ComponentItem::ComponentInstance(instance) => {
            let members: Vec<String> =
                instance.exports(engine).map(|(member, item)| format!("    {}", names.describe_item(engine, member, &item.ty))).collect();
            format!("interface {name} {{\n{}\n}}", members.join("\n"))
        }
        ComponentItem::Type(ty) => format!("type {name} = {}", type_name(ty, names)),
        ComponentItem::Resource(_) => format!("resource {name}"),
        ComponentItem::CoreFunc(_) => format!("core func {name}"),
        ComponentItem::Module(_) => format!("core module {name}"),
        ComponentItem::Component(_) => format!("component {name}"),
        #[allow(unreachable_patterns)]
        _ => format!("{name}: (unsupported item)"),
    }
}

/// A component-model type in WIT syntax: its name if it has one, else spelled out.
fn type_name(ty: &Type, names: &TypeNames) -> String {
    match names.name_of(ty) {
        Some(name) => name.to_owned(),
        None => spell(ty, names),
    }
}

/// A type spelled out one level, its parts named where they have names.
fn spell(ty: &Type, names: &TypeNames) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(list) => format!("list<{}>", type_name(&list.ty(), names)),
        Type::Record(record) => {
            let fields: Vec<String> = record.fields().map(|field| format!("{}: {}", field.name, type_name(&field.ty, names))).collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(tuple) => format!("tuple<{}>", tuple.types().map(|ty| type_name(&ty, names)).collect::<Vec<_>>().join(", ")),
        Type::Variant(variant) => {
            let cases: Vec<String> = variant
                .cases()
                .map(|case| match &case.ty {
                    Some(ty) => format!("{}({})", case.name, type_name(ty, names)),
                    None => case.name.to_string(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        Type::Enum(enumeration) => format!("enum {{ {} }}", enumeration.names().collect::<Vec<_>>().join(", ")),
        Type::Option(option) => format!("option<{}>", type_name(&option.ty(), names)),
        Type::Result(result) => {
            let part = |ty: Option<Type>| ty.map_or_else(|| "_".to_owned(), |ty| type_name(&ty, names));
            format!("result<{}, {}>", part(result.ok()), part(result.err()))
        }
        Type::Flags(flags) => format!("flags {{ {} }}", flags.names().collect::<Vec<_>>().join(", ")),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        other => format!("{other:?}"),
    }
}
