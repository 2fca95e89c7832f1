//! Editing a JSON object as text: the members an edit does not reach keep their exact text
//! (integers past a double, `-0`, `1.50`, escapes), where parsing the record into a
//! `serde_json::Map` and writing it again would pass every number through a double.
//!
//! [`RawObject`] reads an object's members as borrowed texts and parses a member further only
//! when an edit's path goes through it. Of a name an object repeats, the first value counts
//! (as in the lookups): the object itself and every object an edit opens leave the later ones
//! out of what is written, and values no edit reaches are written as they came. `set` and `remove`
//! follow [`FieldPath::set`] and [`FieldPath::remove`]: missing objects on the way are made, a
//! numeric segment names an array's element.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::json::{FieldPath, KeyText};

/// A JSON object whose members are kept as their texts until an edit reaches into them.
#[derive(Debug, Clone, Default)]
pub struct RawObject<'a> {
    members: Vec<(Cow<'a, str>, RawNode<'a>)>,
}

/// One value of a [`RawObject`]: the text it was read as, a value written by an edit, or an
/// object or array opened by an edit's path.
#[derive(Debug, Clone)]
pub enum RawNode<'a> {
    /// The value's text as read (or given), written back unchanged.
    Text(Cow<'a, RawValue>),
    /// An object an edit reached into.
    Object(RawObject<'a>),
    /// An array an edit reached into.
    Array(Vec<RawNode<'a>>),
}

/// Above this many members, repeated names are found through a set rather than a scan.
const MEMBERS_SCANNED: usize = 32;

impl<'a> RawObject<'a> {
    /// Reads `text` as a JSON object; an error (serde_json's) when it is not valid JSON, and
    /// `Ok(None)` when it is valid JSON of another kind.
    pub fn parse(text: &'a str) -> Result<Option<RawObject<'a>>, serde_json::Error> {
        if text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
            serde_json::from_str::<RawObject<'a>>(text).map(Some)
        } else {
            serde_json::from_str::<&RawValue>(text).map(|_| None)
        }
    }

    /// An empty object.
    pub fn new() -> RawObject<'a> {
        RawObject::default()
    }

    /// The names of the object's members, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(name, _)| name.as_ref())
    }

    /// The object's members, in order.
    pub fn members(&self) -> impl Iterator<Item = (&str, &RawNode<'a>)> {
        self.members.iter().map(|(name, node)| (name.as_ref(), node))
    }

    /// The object with every borrowed text copied, to keep beyond the text it was read from.
    pub fn into_owned(self) -> RawObject<'static> {
        RawObject { members: self.members.into_iter().map(|(name, node)| (Cow::Owned(name.into_owned()), node.into_owned())).collect() }
    }

    /// The JSON text of the value at `path`, if there is one (borrowed when no edit wrote
    /// or opened it); else that of the top-level member spelt like the whole path
    /// ([`FieldPath::whole_name`]).
    pub fn get(&self, path: &FieldPath) -> Option<Cow<'_, RawValue>> {
        self.get_nested(path).or_else(|| if path.segments().len() > 1 { self.get_member(path.as_str()) } else { None })
    }

    /// The JSON text of the value at `path`, nested only (no top-level member spelt like the
    /// whole path).
    pub fn get_nested(&self, path: &FieldPath) -> Option<Cow<'_, RawValue>> {
        let (first, rest) = path.segments().split_first()?;
        let mut node = Cow::Borrowed(self.member(first)?);
        for segment in rest {
            node = match node {
                Cow::Borrowed(node) => node.child(segment)?,
                Cow::Owned(node) => Cow::Owned(node.child(segment)?.into_owned()),
            };
        }
        Some(text_of(node))
    }

    /// The JSON text of the member named `name` (a name, not a path), if there is one.
    pub fn get_member(&self, name: &str) -> Option<Cow<'_, RawValue>> {
        self.member(name).map(|node| text_of(Cow::Borrowed(node)))
    }

    /// Removes the member named `name` (a name, not a path) and returns it.
    pub fn remove_member(&mut self, name: &str) -> Option<RawNode<'a>> {
        let position = self.position(name)?;
        Some(self.members.remove(position).1)
    }

    /// Sets the member named `name` (a name, not a path) to the JSON text `json`, in its place
    /// when the object has it, else at the end.
    pub fn set_member(&mut self, name: &str, json: Box<RawValue>) {
        self.insert(name, RawNode::text(json));
    }

    /// Sets the member named `name` (a name, not a path) to `node`, in its place when the
    /// object has it, else at the end.
    pub fn set_member_node(&mut self, name: &str, node: RawNode<'a>) {
        self.insert(name, node);
    }

    /// Sets the value at `path` to the JSON text `json`, as [`FieldPath::set`] sets a value.
    pub fn set(&mut self, path: &FieldPath, json: Box<RawValue>) -> Result<(), String> {
        self.set_node(path, RawNode::text(json))
    }

    /// Sets the value at `path` to `value` written as JSON.
    pub fn set_value<T: Serialize + ?Sized>(&mut self, path: &FieldPath, value: &T) -> Result<(), String> {
        let json = serde_json::value::to_raw_value(value).map_err(|error| format!("cannot set {path}: {error}"))?;
        self.set(path, json)
    }

    /// Sets the value at `path` to `node` (a value taken from another place, say).
    pub fn set_node(&mut self, path: &FieldPath, node: RawNode<'a>) -> Result<(), String> {
        let Some((last, middle)) = path.segments().split_last() else { return Ok(()) };
        let mut target = Target::Object(self);
        let mut name = "";
        for segment in middle {
            target = target.enter(name, segment).map_err(|phrase| format!("cannot set {path}: {phrase}"))?;
            name = segment;
        }
        target.put(name, last, node).map_err(|phrase| format!("cannot set {path}: {phrase}"))
    }

    /// Removes the value at `path` and returns it, as [`FieldPath::remove`] does (the
    /// top-level member spelt like the whole path when there is no nested field there).
    pub fn remove(&mut self, path: &FieldPath) -> Option<RawNode<'a>> {
        match self.remove_nested(path) {
            Some(node) => Some(node),
            None if path.segments().len() > 1 => self.remove_member(path.as_str()),
            None => None,
        }
    }

    fn remove_nested(&mut self, path: &FieldPath) -> Option<RawNode<'a>> {
        let (last, middle) = path.segments().split_last()?;
        let mut target = Target::Object(self);
        for segment in middle {
            target = target.enter_existing(segment)?;
        }
        target.take(last)
    }

    /// Writes the object as JSON text.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (position, (name, node)) in self.members.iter().enumerate() {
            if position > 0 {
                out.push(b',');
            }
            crate::fields::write_string(out, name);
            out.push(b':');
            node.write_to(out);
        }
        out.push(b'}');
    }

    /// Whether the object has a member named `name` (a name, not a path).
    pub fn has_member(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets the member named `name` (a name, not a path) to `value` written as JSON, in its
    /// place when the object has it, else at the end.
    pub fn set_member_value<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), String> {
        let json = serde_json::value::to_raw_value(value).map_err(|error| format!("cannot set {name}: {error}"))?;
        self.insert(name, RawNode::text(json));
        Ok(())
    }

    fn member(&self, name: &str) -> Option<&RawNode<'a>> {
        self.members.iter().find(|(member, _)| member == name).map(|(_, node)| node)
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|(member, _)| member == name)
    }

    /// The member `name`, added (as `made()`) at the end when missing.
    fn entry(&mut self, name: &str, made: impl FnOnce() -> RawNode<'a>) -> &mut RawNode<'a> {
        let position = match self.position(name) {
            Some(position) => position,
            None => {
                self.members.push((Cow::Owned(name.to_owned()), made()));
                self.members.len() - 1
            }
        };
        &mut self.members[position].1
    }

    fn insert(&mut self, name: &str, node: RawNode<'a>) {
        *self.entry(name, || RawNode::Object(RawObject::new())) = node;
    }
}

impl Serialize for RawObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.members.len()))?;
        for (name, node) in &self.members {
            map.serialize_entry(name.as_ref(), node)?;
        }
        map.end()
    }
}

impl Serialize for RawNode<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RawNode::Text(text) => text.as_ref().serialize(serializer),
            RawNode::Object(object) => object.serialize(serializer),
            RawNode::Array(items) => items.serialize(serializer),
        }
    }
}

impl fmt::Display for RawObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Vec::new();
        self.write_to(&mut text);
        f.write_str(&String::from_utf8_lossy(&text))
    }
}

impl<'a> RawNode<'a> {
    /// A node holding the JSON text `json`.
    pub fn text(json: Box<RawValue>) -> RawNode<'a> {
        RawNode::Text(Cow::Owned(json))
    }

    /// The node written as JSON text.
    pub fn to_json(&self) -> String {
        let mut text = Vec::new();
        self.write_to(&mut text);
        // Every piece written is JSON text, which is UTF-8.
        String::from_utf8(text).unwrap_or_default()
    }

    /// Writes the node as JSON text.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            RawNode::Text(text) => out.extend_from_slice(text.get().as_bytes()),
            RawNode::Object(object) => object.write_to(out),
            RawNode::Array(items) => {
                out.push(b'[');
                for (position, item) in items.iter().enumerate() {
                    if position > 0 {
                        out.push(b',');
                    }
                    item.write_to(out);
                }
                out.push(b']');
            }
        }
    }

    /// The member or element `segment` names, read from the text when need be.
    fn child(&self, segment: &str) -> Option<Cow<'_, RawNode<'a>>> {
        match self {
            RawNode::Object(object) => object.member(segment).map(Cow::Borrowed),
            RawNode::Array(items) => items.get(segment.parse::<usize>().ok()?).map(Cow::Borrowed),
            RawNode::Text(_) => match self.opened()? {
                RawNode::Object(object) => object.members.into_iter().find(|(name, _)| name == segment).map(|(_, node)| Cow::Owned(node)),
                RawNode::Array(mut items) => {
                    let index = segment.parse::<usize>().ok().filter(|index| *index < items.len())?;
                    Some(Cow::Owned(items.swap_remove(index)))
                }
                RawNode::Text(_) => None,
            },
        }
    }

    /// The object or array this text holds, its members read as texts; `None` for a text of
    /// another kind (or for a node already open).
    fn opened(&self) -> Option<RawNode<'a>> {
        // The text is one valid JSON value already, so reading it again cannot fail.
        match self {
            RawNode::Text(Cow::Borrowed(text)) => open_text(text),
            RawNode::Text(Cow::Owned(text)) => open_text(text).map(RawNode::into_owned),
            _ => None,
        }
    }

    /// Opens the node in place when it is the text of an object or an array.
    fn open(&mut self) {
        if let Some(opened) = self.opened() {
            *self = opened;
        }
    }

    /// The node with every borrowed text copied.
    pub fn into_owned(self) -> RawNode<'static> {
        match self {
            RawNode::Text(text) => RawNode::Text(Cow::Owned(text.into_owned())),
            RawNode::Object(object) => RawNode::Object(object.into_owned()),
            RawNode::Array(items) => RawNode::Array(items.into_iter().map(RawNode::into_owned).collect()),
        }
    }
}

/// The JSON text of `node`: its own when it is a text, else written.
fn text_of<'n>(node: Cow<'n, RawNode<'_>>) -> Cow<'n, RawValue> {
    match node {
        Cow::Borrowed(RawNode::Text(text)) => Cow::Borrowed(text.as_ref()),
        Cow::Owned(RawNode::Text(text)) => Cow::Owned(text.into_owned()),
        // Written from valid JSON texts, so valid JSON itself.
        other => RawValue::from_string(other.to_json()).map_or(Cow::Borrowed(RawValue::NULL), Cow::Owned),
    }
}

/// The object or array `text` holds, its members borrowing from it; `None` for another kind.
fn open_text(text: &RawValue) -> Option<RawNode<'_>> {
    let text = text.get();
    match text.as_bytes().first()? {
        b'{' => serde_json::from_str::<RawObject<'_>>(text).ok().map(RawNode::Object),
        b'[' => serde_json::from_str::<RawItems<'_>>(text).ok().map(|RawItems(items)| RawNode::Array(items)),
        _ => None,
    }
}

/// Where an edit's path has got to: an object, or an array.
enum Target<'o, 'a> {
    Object(&'o mut RawObject<'a>),
    Array(&'o mut Vec<RawNode<'a>>),
}

impl<'o, 'a> Target<'o, 'a> {
    /// Goes into `segment` (of the value named `name`), making an empty object there when an
    /// object lacks it; an error phrase, as [`FieldPath::set`] words it, when it cannot.
    fn enter(self, name: &str, segment: &str) -> Result<Target<'o, 'a>, String> {
        let node = match self {
            Target::Object(object) => object.entry(segment, || RawNode::Object(RawObject::new())),
            Target::Array(items) => array_element(items, segment).map_err(|reason| format!("{name:?} {reason}"))?,
        };
        Target::of(node).ok_or_else(|| format!("{segment:?} is not an object"))
    }

    /// Goes into `segment` when it exists and is an object or an array.
    fn enter_existing(self, segment: &str) -> Option<Target<'o, 'a>> {
        let node = match self {
            Target::Object(object) => {
                let position = object.position(segment)?;
                &mut object.members[position].1
            }
            Target::Array(items) => array_element(items, segment).ok()?,
        };
        Target::of(node)
    }

    fn of(node: &'o mut RawNode<'a>) -> Option<Target<'o, 'a>> {
        node.open();
        match node {
            RawNode::Object(object) => Some(Target::Object(object)),
            RawNode::Array(items) => Some(Target::Array(items)),
            RawNode::Text(_) => None,
        }
    }

    fn put(self, name: &str, segment: &str, node: RawNode<'a>) -> Result<(), String> {
        match self {
            Target::Object(object) => object.insert(segment, node),
            Target::Array(items) => *array_element(items, segment).map_err(|reason| format!("{name:?} {reason}"))? = node,
        }
        Ok(())
    }

    fn take(self, segment: &str) -> Option<RawNode<'a>> {
        match self {
            Target::Object(object) => object.remove_member(segment),
            Target::Array(items) => {
                let index = segment.parse::<usize>().ok().filter(|index| *index < items.len())?;
                Some(items.remove(index))
            }
        }
    }
}

/// The element of `items` that `segment` indexes, or why there is none (to be said after the
/// array's name).
fn array_element<'v, 'a>(items: &'v mut [RawNode<'a>], segment: &str) -> Result<&'v mut RawNode<'a>, String> {
    let length = items.len();
    let index = segment.parse::<usize>().map_err(|_| format!("is an array, and {segment:?} is not an index"))?;
    items.get_mut(index).ok_or_else(|| format!("is an array of {length} elements, and has no element {index}"))
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawObjectVisitor)
    }
}

struct RawObjectVisitor;

impl<'de> Visitor<'de> for RawObjectVisitor {
    type Value = RawObject<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<RawObject<'de>, A::Error> {
        let mut members: Vec<(Cow<'de, str>, RawNode<'de>)> = Vec::new();
        let mut names: Option<HashSet<String>> = None;
        while let Some(name) = entries.next_key::<KeyText<'de>>()? {
            // A repeated name's value is still read (it must be valid JSON), then left out.
            let value: &'de RawValue = entries.next_value()?;
            let name = name.into_cow();
            if members.len() >= MEMBERS_SCANNED {
                let names = names.get_or_insert_with(|| members.iter().map(|(name, _)| name.to_string()).collect());
                if !names.insert(name.to_string()) {
                    continue;
                }
            } else if members.iter().any(|(member, _)| *member == name) {
                continue;
            }
            members.push((name, RawNode::Text(Cow::Borrowed(value))));
        }
        Ok(RawObject { members })
    }
}

/// An array's elements as texts.
struct RawItems<'a>(Vec<RawNode<'a>>);

impl<'de> Deserialize<'de> for RawItems<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(RawItemsVisitor)
    }
}

struct RawItemsVisitor;

impl<'de> Visitor<'de> for RawItemsVisitor {
    type Value = RawItems<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<RawItems<'de>, A::Error> {
        let mut nodes = Vec::new();
        while let Some(item) = items.next_element::<&'de RawValue>()? {
            nodes.push(RawNode::Text(Cow::Borrowed(item)));
        }
        Ok(RawItems(nodes))
    }
}

#[cfg(test)]
mod tests;
