//! One predicate on one JSON field (or on an arithmetic expression of fields), and how JSON
//! values compare.

use std::cmp::Ordering;
use std::fmt;

use serde::Deserialize;
use sluice_sdk::expression::{BoundExpression, Expression};
use sluice_sdk::serde_json::Value;
use sluice_sdk::{FieldPath, json};

/// A test on one field of the payload, or on an expression computed from its fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    pub field: Option<FieldPath>,
    pub expression: Option<Computed>,
    pub op: Comparison,
    pub value: Option<Value>,
}

/// An arithmetic expression over numeric fields (`project`'s `compute` language), parsed.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Computed {
    text: String,
    /// Its fields bound to their positions in `fields`.
    expression: BoundExpression,
    /// The fields it reads.
    fields: Vec<FieldPath>,
}

impl TryFrom<String> for Computed {
    type Error = String;

    fn try_from(text: String) -> Result<Computed, String> {
        let expression = Expression::parse(&text).map_err(|error| format!("expression: {error}"))?;
        let mut fields = expression.fields();
        // Read once each, however often the expression names them.
        let mut seen = std::collections::HashSet::new();
        fields.retain(|field| seen.insert(field.clone()));
        Ok(Computed { text, expression: expression.bind(&fields), fields })
    }
}

impl Computed {
    /// The fields the expression reads.
    pub fn fields(&self) -> &[FieldPath] {
        &self.fields
    }

    /// Its value, given the JSON text of each field it reads (`fields`, in order); `None` when
    /// it has none: a field is missing or not a number, or the result is not finite.
    pub fn value(&self, texts: &[Option<&[u8]>]) -> Option<Value> {
        self.expression.evaluate_texts(texts).ok()
    }
}

/// What a predicate tests: a field's JSON text, or an expression's computed value.
#[derive(Debug, Clone, Copy)]
pub enum Found<'a> {
    Text(&'a [u8]),
    Computed(&'a Value),
}

/// What a predicate is about, for messages: the field, or the expression.
struct Subject<'a>(&'a Predicate);

impl fmt::Display for Subject<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.0.field, &self.0.expression) {
            (Some(field), _) => write!(formatter, "{field}"),
            (None, Some(computed)) => write!(formatter, "{:?}", computed.text),
            (None, None) => formatter.write_str("nothing"),
        }
    }
}

/// How the field is compared with the operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// The field is present (even if null).
    Exists,
    /// The field is absent.
    Missing,
    /// The field equals one of the operand's elements (an array).
    In,
    /// The field equals none of the operand's elements (an array).
    NotIn,
}

impl Comparison {
    /// The comparison as a configuration writes it (`not-in`).
    pub fn name(self) -> &'static str {
        match self {
            Comparison::Eq => "eq",
            Comparison::Ne => "ne",
            Comparison::Lt => "lt",
            Comparison::Le => "le",
            Comparison::Gt => "gt",
            Comparison::Ge => "ge",
            Comparison::Exists => "exists",
            Comparison::Missing => "missing",
            Comparison::In => "in",
            Comparison::NotIn => "not-in",
        }
    }
}

impl Predicate {
    /// A checked predicate.
    pub fn new(field: Option<FieldPath>, expression: Option<Computed>, op: Comparison, value: Option<Value>) -> Result<Predicate, String> {
        let predicate = Predicate { field, expression, op, value };
        predicate.check()?;
        Ok(predicate)
    }

    /// Refuses a predicate without exactly one of `field` and `expression`, and operands that
    /// cannot work with the comparison.
    pub fn check(&self) -> Result<(), String> {
        let field = Subject(self);
        match (&self.field, &self.expression) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => return Err("a predicate tests either a `field` or an `expression` (exactly one of them)".into()),
        }
        self.check_operand_shape()?;
        if self.expression.is_some()
            && let Some(other) = self.value.iter().flat_map(operands).find(|operand| !operand.is_number())
        {
            return Err(format!(
                "predicate on {field}: an expression computes a number, and `{}` compares it with {}; it could never hold \
                 as meant: compare with a number",
                self.op.name(),
                json::kind(other)
            ));
        }
        Ok(())
    }

    /// Refuses operands of a shape the comparison cannot use.
    fn check_operand_shape(&self) -> Result<(), String> {
        let field = Subject(self);
        match (self.op, &self.value) {
            (Comparison::Exists | Comparison::Missing, Some(_)) => {
                Err(format!("predicate on {field}: `{}` takes no `value`", self.op.name()))
            }
            (Comparison::Exists | Comparison::Missing, None) => Ok(()),
            (Comparison::In | Comparison::NotIn, Some(Value::Array(_))) => Ok(()),
            (Comparison::In | Comparison::NotIn, _) => Err(format!("predicate on {field}: `in` and `not-in` need an array `value`")),
            (_, None) => Err(format!("predicate on {field}: this comparison needs a `value`")),
            (Comparison::Lt | Comparison::Le | Comparison::Gt | Comparison::Ge, Some(Value::Number(_) | Value::String(_))) => Ok(()),
            (Comparison::Lt | Comparison::Le | Comparison::Gt | Comparison::Ge, Some(other)) => Err(format!(
                "predicate on {field}: `{}` orders numbers or strings, not {}; it could never hold",
                self.op.name(),
                json::kind(other)
            )),
            (_, Some(_)) => Ok(()),
        }
    }

    /// The fields the predicate reads: its field, or those of its expression.
    pub fn reads(&self) -> Vec<FieldPath> {
        match (&self.field, &self.expression) {
            (Some(field), _) => vec![field.clone()],
            (None, Some(computed)) => computed.fields().to_vec(),
            (None, None) => Vec::new(),
        }
    }

    /// Whether the predicate holds, given the JSON text of each field it `reads` (`None`:
    /// absent). An expression that cannot be computed counts as an absent field.
    pub fn holds_for(&self, texts: &[Option<&[u8]>]) -> bool {
        match &self.expression {
            Some(computed) => self.holds(computed.value(texts).as_ref().map(Found::Computed)),
            None => self.holds(texts.first().copied().flatten().map(Found::Text)),
        }
    }

    /// Whether the predicate holds for what it tests (`None`: absent).
    pub fn holds(&self, found: Option<Found<'_>>) -> bool {
        let operand = self.value.as_ref();
        match (self.op, found, operand) {
            (Comparison::Exists, found, _) => found.is_some(),
            (Comparison::Missing, found, _) => found.is_none(),
            (_, None, _) | (_, _, None) => self.op == Comparison::Ne || self.op == Comparison::NotIn,
            (Comparison::Eq, Some(found), Some(operand)) => found.equals(operand),
            (Comparison::Ne, Some(found), Some(operand)) => !found.equals(operand),
            (Comparison::In, Some(found), Some(operand)) => contains(operand, found),
            (Comparison::NotIn, Some(found), Some(operand)) => !contains(operand, found),
            (ordering, Some(found), Some(operand)) => found.order(operand).is_some_and(|found| ordering_holds(ordering, found)),
        }
    }
}

impl Found<'_> {
    fn equals(self, operand: &Value) -> bool {
        match self {
            Found::Text(text) => raw_equal(text, operand),
            Found::Computed(value) => json_equal(value, operand),
        }
    }

    fn order(self, operand: &Value) -> Option<Ordering> {
        match self {
            Found::Text(text) => raw_order(text, operand),
            Found::Computed(value) => json_order(value, operand),
        }
    }
}

fn ordering_holds(op: Comparison, found: Ordering) -> bool {
    match op {
        Comparison::Lt => found == Ordering::Less,
        Comparison::Le => found != Ordering::Greater,
        Comparison::Gt => found == Ordering::Greater,
        Comparison::Ge => found != Ordering::Less,
        _ => false,
    }
}

fn contains(set: &Value, found: Found<'_>) -> bool {
    set.as_array().is_some_and(|items| items.iter().any(|item| found.equals(item)))
}

/// Whether a field's JSON text equals `operand`; numbers compare by value (`1 == 1.0`).
/// Numbers and strings without escapes are compared in place, without allocating.
fn raw_equal(field: &[u8], operand: &Value) -> bool {
    match operand {
        Value::Number(number) => numbers_order(text_as_number(field), as_number(number)) == Some(Ordering::Equal),
        Value::String(text) => match json::text_is_str(field, text) {
            Some(equal) => equal,
            None => parsed(field).is_some_and(|value| value == *operand),
        },
        other => parsed(field).is_some_and(|value| json_equal(&value, other)),
    }
}

/// Order of a field against a number or string operand; other pairs are not ordered.
fn raw_order(field: &[u8], operand: &Value) -> Option<Ordering> {
    match operand {
        Value::Number(number) => numbers_order(text_as_number(field), as_number(number)),
        Value::String(text) => match json::text_plain_str(field) {
            Some(plain) => Some(plain.cmp(text.as_str())),
            None => parsed(field).and_then(|value| json_order(&value, operand)),
        },
        _ => None,
    }
}

fn parsed(field: &[u8]) -> Option<Value> {
    sluice_sdk::serde_json::from_slice(field).ok()
}

/// Equality where numbers compare by value (`1 == 1.0`), integers exactly, also inside arrays
/// and objects; objects whatever the order of their members.
pub fn json_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => numbers_order(as_number(a), as_number(b)) == Some(Ordering::Equal),
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(a, b)| json_equal(a, b)),
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(name, a)| b.get(name).is_some_and(|b| json_equal(a, b)))
        }
        _ => left == right,
    }
}

/// Order of two numbers or two strings; other pairs are not ordered. Integers compare exactly.
pub fn json_order(left: &Value, right: &Value) -> Option<Ordering> {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => numbers_order(as_number(a), as_number(b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// A JSON number: its exact value when it is an integer, else its double.
#[derive(Clone, Copy)]
enum Number {
    Integer(i128),
    Float(f64),
}

fn as_number(number: &sluice_sdk::serde_json::Number) -> Option<Number> {
    integer(number).map(Number::Integer).or_else(|| number.as_f64().map(Number::Float))
}

fn text_as_number(text: &[u8]) -> Option<Number> {
    json::text_integer(text).map(Number::Integer).or_else(|| json::text_number(text).ok().flatten().map(Number::Float))
}

/// Order of two numbers by value: integers exactly, with each other and with doubles (through
/// a double, 2⁵³ + 1 would equal the double 2⁵³).
fn numbers_order(left: Option<Number>, right: Option<Number>) -> Option<Ordering> {
    match (left?, right?) {
        (Number::Integer(a), Number::Integer(b)) => Some(a.cmp(&b)),
        (Number::Integer(a), Number::Float(b)) => integer_float_order(a, b),
        (Number::Float(a), Number::Integer(b)) => integer_float_order(b, a).map(Ordering::reverse),
        (Number::Float(a), Number::Float(b)) => a.partial_cmp(&b),
    }
}

/// The exact order of an integer and a double.
fn integer_float_order(integer: i128, float: f64) -> Option<Ordering> {
    // Integers of at most 2⁵³ in magnitude are doubles exactly: compared as doubles (the
    // common case), with no 128-bit arithmetic, which WebAssembly does in software calls.
    if let Ok(small) = i64::try_from(integer)
        && small.unsigned_abs() <= 1 << 53
    {
        return (small as f64).partial_cmp(&float);
    }
    if float.is_nan() {
        return None;
    }
    let floor = float.floor();
    let bound = 2f64.powi(127);
    if floor >= bound {
        return Some(Ordering::Less);
    }
    if floor < -bound {
        return Some(Ordering::Greater);
    }
    // A whole double within ±2¹²⁷ converts exactly.
    match integer.cmp(&(floor as i128)) {
        Ordering::Equal if float > floor => Some(Ordering::Less),
        ordering => Some(ordering),
    }
}

/// A JSON integer's exact value: beyond 2⁵³ a double cannot tell neighbours apart
/// (9007199254740993 would equal 9007199254740992).
fn integer(number: &sluice_sdk::serde_json::Number) -> Option<i128> {
    number.as_i64().map(i128::from).or_else(|| number.as_u64().map(i128::from))
}

/// The values a predicate's operand compares with: an array's elements, or the value itself.
fn operands(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(elements) => elements.iter().collect(),
        other => vec![other],
    }
}
