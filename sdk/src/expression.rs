//! Arithmetic expressions over a record's numeric fields: `price * quantity - discount`.
//!
//! Grammar: numbers, dotted field paths, `+ - * /` and `%` (the remainder, with the sign of
//! the left operand, as SQL's `MOD`), unary minus, parentheses and the
//! functions `abs(x)`, `min(x, y)`, `max(x, y)`, `round(x)` and `round(x, digits)`.

use serde_json::{Map, Value};

use crate::FieldPath;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    Number(f64),
    Field(FieldPath),
    Negate(Box<Expression>),
    Binary(Box<Expression>, Operator, Box<Expression>),
    Call(Function, Vec<Expression>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Add,
    Subtract,
    Multiply,
    Divide,
    Remainder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Abs,
    Min,
    Max,
    Round,
}

impl Expression {
    /// Parses `text`; the error names the position of the problem.
    pub fn parse(text: &str) -> Result<Expression, String> {
        let mut parser = Parser { text, position: 0 };
        let expression = parser.sum()?;
        parser.skip_spaces();
        if parser.position < text.len() {
            return Err(parser.error("unexpected text"));
        }
        Ok(expression)
    }

    /// The fields the expression reads.
    pub fn fields(&self) -> Vec<FieldPath> {
        match self {
            Expression::Number(_) => Vec::new(),
            Expression::Field(path) => vec![path.clone()],
            Expression::Negate(inner) => inner.fields(),
            Expression::Binary(left, _, right) => [left.fields(), right.fields()].concat(),
            Expression::Call(_, arguments) => arguments.iter().flat_map(Expression::fields).collect(),
        }
    }

    /// Evaluates against `record`; integral results become JSON integers.
    pub fn evaluate(&self, record: &Map<String, Value>) -> Result<Value, String> {
        self.evaluate_with(&mut |path| match path.get(record) {
            Some(Value::Number(number)) => number.as_f64().ok_or_else(|| format!("field {path} is out of range")),
            Some(other) => Err(format!("field {path} is {}, not a number", crate::json::kind(other))),
            None => Err(format!("field {path} is missing")),
        })
    }

    /// Evaluates with each field's number read from `texts`, the JSON text of the fields at
    /// `paths` (as [`crate::Record::field_texts`] gives them; `None`: absent); the error names
    /// a field that is missing or not a number.
    pub fn evaluate_texts(&self, paths: &[FieldPath], texts: &[Option<&[u8]>]) -> Result<Value, String> {
        self.finite_number_texts(paths, texts).map(crate::json::number)
    }

    /// [`Expression::evaluate_texts`]'s result as the number itself (written as JSON by
    /// [`crate::json::write_number`], without a `Value` between).
    pub fn finite_number_texts(&self, paths: &[FieldPath], texts: &[Option<&[u8]>]) -> Result<f64, String> {
        self.finite_number(&mut |path| number_at(paths, texts, path))
    }

    /// Evaluates with `field` giving each field's number (or why there is none).
    pub fn evaluate_with(&self, field: &mut dyn FnMut(&FieldPath) -> Result<f64, String>) -> Result<Value, String> {
        self.finite_number(field).map(crate::json::number)
    }

    fn finite_number(&self, field: &mut dyn FnMut(&FieldPath) -> Result<f64, String>) -> Result<f64, String> {
        finite(self.number(field)?)
    }

    fn number(&self, field: &mut dyn FnMut(&FieldPath) -> Result<f64, String>) -> Result<f64, String> {
        match self {
            Expression::Number(number) => Ok(*number),
            Expression::Field(path) => field(path),
            Expression::Negate(inner) => Ok(-inner.number(field)?),
            Expression::Binary(left, operator, right) => Ok(apply(*operator, left.number(field)?, right.number(field)?)),
            Expression::Call(function, arguments) => {
                let values = arguments.iter().map(|argument| argument.number(field)).collect::<Result<Vec<_>, _>>()?;
                Ok(call(*function, &values))
            }
        }
    }
}

/// An expression whose fields are bound to their positions among the paths a reader reads
/// ([`Expression::bind`]): evaluated over the texts read at those paths without looking each
/// field up among them again, record after record.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundExpression(Bound);

#[derive(Debug, Clone, PartialEq)]
enum Bound {
    Number(f64),
    /// The field's position among the paths read (`None`: not among them, so always missing),
    /// and its path, for messages.
    Field(Option<usize>, FieldPath),
    Negate(Box<Bound>),
    Binary(Box<Bound>, Operator, Box<Bound>),
    Call(Function, Vec<Bound>),
}

impl Expression {
    /// The expression with each field bound to its position in `paths` (the last one, if a
    /// path is there twice), for [`BoundExpression::finite_number_texts`] over the texts read
    /// at `paths`.
    pub fn bind(&self, paths: &[FieldPath]) -> BoundExpression {
        BoundExpression(self.bound(paths))
    }

    fn bound(&self, paths: &[FieldPath]) -> Bound {
        match self {
            Expression::Number(number) => Bound::Number(*number),
            Expression::Field(path) => Bound::Field(paths.iter().rposition(|read| read == path), path.clone()),
            Expression::Negate(inner) => Bound::Negate(Box::new(inner.bound(paths))),
            Expression::Binary(left, operator, right) => {
                Bound::Binary(Box::new(left.bound(paths)), *operator, Box::new(right.bound(paths)))
            }
            Expression::Call(function, arguments) => {
                Bound::Call(*function, arguments.iter().map(|argument| argument.bound(paths)).collect())
            }
        }
    }
}

impl BoundExpression {
    /// [`Expression::evaluate_texts`], `texts` being those read at the paths it was bound to.
    pub fn evaluate_texts(&self, texts: &[Option<&[u8]>]) -> Result<Value, String> {
        self.finite_number_texts(texts).map(crate::json::number)
    }

    /// [`Expression::finite_number_texts`], `texts` being those read at the paths it was bound
    /// to.
    pub fn finite_number_texts(&self, texts: &[Option<&[u8]>]) -> Result<f64, String> {
        finite(self.0.number(texts)?)
    }
}

fn finite(number: f64) -> Result<f64, String> {
    if number.is_finite() { Ok(number) } else { Err("result is not a finite number (division by zero?)".into()) }
}

impl Bound {
    fn number(&self, texts: &[Option<&[u8]>]) -> Result<f64, String> {
        match self {
            Bound::Number(number) => Ok(*number),
            Bound::Field(position, path) => text_at(position.and_then(|position| texts.get(position).copied().flatten()), path),
            Bound::Negate(inner) => Ok(-inner.number(texts)?),
            Bound::Binary(left, operator, right) => Ok(apply(*operator, left.number(texts)?, right.number(texts)?)),
            Bound::Call(function, arguments) => {
                let values = arguments.iter().map(|argument| argument.number(texts)).collect::<Result<Vec<_>, _>>()?;
                Ok(call(*function, &values))
            }
        }
    }
}

fn apply(operator: Operator, left: f64, right: f64) -> f64 {
    match operator {
        Operator::Add => left + right,
        Operator::Subtract => left - right,
        Operator::Multiply => left * right,
        Operator::Divide => left / right,
        Operator::Remainder => left % right,
    }
}

/// The number of the field at `path`, among `texts` read at `paths` (the last one, if a path
/// is read twice).
fn number_at(paths: &[FieldPath], texts: &[Option<&[u8]>], path: &FieldPath) -> Result<f64, String> {
    let index = paths.iter().rposition(|read| read == path).ok_or_else(|| format!("field {path} is missing"))?;
    text_at(texts.get(index).copied().flatten(), path)
}

/// The number in `text`, the JSON text of the field at `path` (`None`: absent).
fn text_at(text: Option<&[u8]>, path: &FieldPath) -> Result<f64, String> {
    match text.map(crate::json::text_number) {
        Some(Ok(Some(number))) => Ok(number),
        Some(Ok(None)) => Err(format!("field {path} is null, not a number")),
        Some(Err(kind)) => Err(format!("field {path} is {kind}, not a number")),
        None => Err(format!("field {path} is missing")),
    }
}

fn call(function: Function, values: &[f64]) -> f64 {
    match (function, values) {
        (Function::Abs, [x]) => x.abs(),
        (Function::Min, [x, y]) => x.min(*y),
        (Function::Max, [x, y]) => x.max(*y),
        (Function::Round, [x]) => x.round(),
        (Function::Round, [x, digits]) => {
            let scale = 10f64.powi(*digits as i32);
            (x * scale).round() / scale
        }
        // Arity is checked by the parser.
        _ => f64::NAN,
    }
}

struct Parser<'t> {
    text: &'t str,
    position: usize,
}

impl<'t> Parser<'t> {
    fn sum(&mut self) -> Result<Expression, String> {
        let mut left = self.product()?;
        while let Some(operator) = self.operator(&[('+', Operator::Add), ('-', Operator::Subtract)]) {
            left = Expression::Binary(Box::new(left), operator, Box::new(self.product()?));
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Expression, String> {
        let mut left = self.unary()?;
        while let Some(operator) = self.operator(&[('*', Operator::Multiply), ('/', Operator::Divide), ('%', Operator::Remainder)]) {
            left = Expression::Binary(Box::new(left), operator, Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expression, String> {
        if self.eat('-') {
            return Ok(Expression::Negate(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expression, String> {
        self.skip_spaces();
        if self.eat('(') {
            let inner = self.sum()?;
            return if self.eat(')') { Ok(inner) } else { Err(self.error("expected ')'")) };
        }
        let start = self.position;
        let word = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if word.is_empty() {
            return Err(self.error("expected a number, a field or '('"));
        }
        if word.starts_with(|c: char| c.is_ascii_digit()) {
            return word.parse().map(Expression::Number).map_err(|_| self.error_at(start, "invalid number"));
        }
        if self.eat('(') {
            return self.call(word, start);
        }
        FieldPath::parse(word).map(Expression::Field).map_err(|error| self.error_at(start, &error))
    }

    fn call(&mut self, name: &str, start: usize) -> Result<Expression, String> {
        let (function, arities): (Function, &[usize]) = match name {
            "abs" => (Function::Abs, &[1]),
            "min" => (Function::Min, &[2]),
            "max" => (Function::Max, &[2]),
            "round" => (Function::Round, &[1, 2]),
            _ => return Err(self.error_at(start, &format!("unknown function {name:?}"))),
        };
        let mut arguments = vec![self.sum()?];
        while self.eat(',') {
            arguments.push(self.sum()?);
        }
        if !self.eat(')') {
            return Err(self.error("expected ')' or ','"));
        }
        if !arities.contains(&arguments.len()) {
            return Err(self.error_at(start, &format!("{name} takes {arities:?} arguments, got {}", arguments.len())));
        }
        Ok(Expression::Call(function, arguments))
    }

    fn operator(&mut self, table: &[(char, Operator)]) -> Option<Operator> {
        table.iter().find(|(symbol, _)| self.eat(*symbol)).map(|(_, operator)| *operator)
    }

    fn eat(&mut self, symbol: char) -> bool {
        self.skip_spaces();
        if self.text[self.position..].starts_with(symbol) {
            self.position += symbol.len_utf8();
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'t str {
        let rest: &'t str = &self.text[self.position..];
        let length = rest.find(|c| !keep(c)).unwrap_or(rest.len());
        self.position += length;
        &rest[..length]
    }

    fn skip_spaces(&mut self) {
        self.take_while(char::is_whitespace);
    }

    fn error(&self, message: &str) -> String {
        self.error_at(self.position, message)
    }

    fn error_at(&self, position: usize, message: &str) -> String {
        format!("{message} at character {} of {:?}", position + 1, self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluate(text: &str, record: serde_json::Value) -> Result<Value, String> {
        let serde_json::Value::Object(record) = record else { panic!("an object") };
        Expression::parse(text)?.evaluate(&record)
    }

    #[test]
    fn the_remainder_binds_like_a_product_and_keeps_the_sign_of_the_left_operand() {
        assert_eq!(evaluate("auction % 123", serde_json::json!({"auction": 1353})), Ok(serde_json::json!(0)));
        assert_eq!(evaluate("auction % 123", serde_json::json!({"auction": 1354})), Ok(serde_json::json!(1)));
        assert_eq!(evaluate("1 + 7 % 4 * 2", serde_json::json!({})), Ok(serde_json::json!(7)));
        assert_eq!(evaluate("-7 % 4", serde_json::json!({})), Ok(serde_json::json!(-3)));
        assert!(evaluate("5 % 0", serde_json::json!({})).is_err(), "no remainder of a division by zero");
    }

    #[test]
    fn a_bound_expression_evaluates_as_the_expression_looking_its_fields_up() {
        let expressions = ["price * qty - discount", "-a.b + max(a.b, 2) % 3", "round(x / y, 2)", "abs(z) + 1", "7", "x / 0"];
        let paths: Vec<FieldPath> =
            ["qty", "price", "a.b", "x", "y", "qty", "discount"].iter().map(|path| FieldPath::parse(path).unwrap()).collect();
        let texts: [&[u8]; 8] = [b"3", b"2.5", b"-4", b"null", b"\"text\"", b"1e3", b"0.125", b"[1]"];
        for text in expressions {
            let expression = Expression::parse(text).unwrap();
            let bound = expression.bind(&paths);
            // Each field present with each text, or absent, in turn.
            for round in 0..(texts.len() + 1) * paths.len() {
                let read: Vec<Option<&[u8]>> =
                    (0..paths.len()).map(|position| texts.get((round + position * 3) % (texts.len() + 1)).copied()).collect();
                assert_eq!(bound.finite_number_texts(&read), expression.finite_number_texts(&paths, &read), "{text} over {read:?}");
                assert_eq!(bound.evaluate_texts(&read), expression.evaluate_texts(&paths, &read), "{text} over {read:?}");
            }
        }
        let unread = Expression::parse("missing + 1").unwrap().bind(&paths);
        assert_eq!(unread.finite_number_texts(&[Some(&b"1"[..]); 7]), Err("field missing is missing".into()));
    }
}
