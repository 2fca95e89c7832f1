//! Describing any component: its imports and exports with their types, in WIT-like syntax.

use wasmtime::Engine;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::Component;

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
    let component = Component::from_binary(engine.engine(), bytes)
        .map_err(|error| PluginError::NotAComponent { path: path.to_owned(), reason: root_cause(&error) })?;
    let engine = engine.engine();
    let kind = component.component_type();
    let imports = kind.imports(engine).map(|(name, item)| describe_item(engine, name, &item.ty)).collect();
    let exports = kind.exports(engine).map(|(name, item)| describe_item(engine, name, &item.ty)).collect();
    Ok(ComponentDescription { imports, exports })
}

fn describe_item(engine: &Engine, name: &str, item: &ComponentItem) -> String {
    match item {
        ComponentItem::ComponentFunc(function) => {
            let params: Vec<String> = function.params().map(|(param, ty)| format!("{param}: {}", type_name(&ty))).collect();
            let results: Vec<String> = function.results().map(|ty| type_name(&ty)).collect();
            let arrow = if results.is_empty() { String::new() } else { format!(" -> {}", results.join(", ")) };
            format!("{name}: func({}){arrow}", params.join(", "))
        }
        ComponentItem::ComponentInstance(instance) => {
            let members: Vec<String> = instance.exports(engine).map(|(member, item)| format!("    {}", describe_item(engine, member, &item.ty))).collect();
            format!("interface {name} {{\n{}\n}}", members.join("\n"))
        }
        ComponentItem::Type(ty) => format!("type {name} = {}", type_name(ty)),
        ComponentItem::Resource(_) => format!("resource {name}"),
        ComponentItem::CoreFunc(_) => format!("core func {name}"),
        ComponentItem::Module(_) => format!("core module {name}"),
        ComponentItem::Component(_) => format!("component {name}"),
        #[allow(unreachable_patterns)]
        _ => format!("{name}: (unsupported item)"),
    }
}

/// A component-model type in WIT syntax (records and variants spelled out).
fn type_name(ty: &Type) -> String {
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
        Type::List(list) => format!("list<{}>", type_name(&list.ty())),
        Type::Record(record) => {
            let fields: Vec<String> = record.fields().map(|field| format!("{}: {}", field.name, type_name(&field.ty))).collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(tuple) => format!("tuple<{}>", tuple.types().map(|ty| type_name(&ty)).collect::<Vec<_>>().join(", ")),
        Type::Variant(variant) => {
            let cases: Vec<String> = variant
                .cases()
                .map(|case| match &case.ty {
                    Some(ty) => format!("{}({})", case.name, type_name(ty)),
                    None => case.name.to_string(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        Type::Enum(enumeration) => format!("enum {{ {} }}", enumeration.names().collect::<Vec<_>>().join(", ")),
        Type::Option(option) => format!("option<{}>", type_name(&option.ty())),
        Type::Result(result) => {
            let part = |ty: Option<Type>| ty.map_or_else(|| "_".to_owned(), |ty| type_name(&ty));
            format!("result<{}, {}>", part(result.ok()), part(result.err()))
        }
        Type::Flags(flags) => format!("flags {{ {} }}", flags.names().collect::<Vec<_>>().join(", ")),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        other => format!("{other:?}"),
    }
}
