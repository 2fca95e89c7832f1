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
                call(*function, &values)
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
                call(*function, &values)
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

fn call(function: Function, values: &[f64]) -> Result<f64, String> {
    Ok(match (function, values) {
        (Function::Abs, [x]) => x.abs(),
        (Function::Min, [x, y]) => x.min(*y),
        (Function::Max, [x, y]) => x.max(*y),
        (Function::Round, [x]) => x.round(),
        (Function::Round, [x, digits]) => round_to_digits(*x, *digits)?,
        // Arity is checked by the parser.
        _ => f64::NAN,
    })
}

/// `x` rounded to `digits` decimal places (tens, hundreds... when negative), half away from
/// zero as `round(x)`, on the decimal the double is written as (its shortest text, as in the
/// JSON it came from): `round(2.675, 2)` is 2.68 and `round(0.0045, 3)` 0.005, as in decimal
/// arithmetic (Flink's `ROUND`), though 2.675's double is a little less than 2.675.
fn round_to_digits(x: f64, digits: f64) -> Result<f64, String> {
    if digits.fract() != 0.0 || !digits.is_finite() {
        return Err(format!("round: the number of digits must be a whole number, not {digits}"));
    }
    if !x.is_finite() || x == 0.0 {
        return Ok(x);
    }
    // Past ±400 places every double is kept whole or rounded to zero.
    let digits = digits.clamp(-400.0, 400.0) as i32;
    if let Some(rounded) = round_far_from_a_tie(x, digits) {
        return Ok(rounded);
    }
    let Some(written) = crate::json::Decimal::parse(format!("{:e}", x.abs()).as_bytes()) else { return Ok(x) };
    // |x| = digits · 10^exponent: its first `kept` digits are worth 10^-digits or more.
    let kept = written.exponent + written.digits.len() as i64 + i64::from(digits);
    if kept >= written.digits.len() as i64 {
        return Ok(x);
    }
    if kept < 0 {
        return Ok(0.0f64.copysign(x));
    }
    let kept = kept as usize;
    let whole = written.digits[..kept].iter().fold(0u64, |whole, digit| whole * 10 + u64::from(digit - b'0'));
    let whole = whole + u64::from(written.digits[kept] >= b'5');
    let rounded: f64 = format!("{whole}e{}", -digits).parse().unwrap_or(f64::NAN);
    Ok(rounded.copysign(x))
}

/// The rounding of `x` to `digits` places done in doubles, when `x · 10^digits` is so far from
/// a tie that the decimal rounding must agree: the integer is the same, and dividing it by the
/// exact power of ten gives the double nearest the rounded decimal.
fn round_far_from_a_tie(x: f64, digits: i32) -> Option<f64> {
    if !(0..=22).contains(&digits) {
        return None;
    }
    let scale = 10f64.powi(digits);
    let scaled = x * scale;
    // Writing x as its shortest decimal and multiplying each move it by at most about
    // |scaled| · 2^-52: the margin is many times that.
    let margin = scaled.abs() * 1e-14;
    let far = margin < 0.25 && (scaled.abs().fract() - 0.5).abs() > margin;
    far.then(|| scaled.round() / scale)
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
            let takes = arities.iter().map(ToString::to_string).collect::<Vec<_>>().join(" or ");
            let plural = if arities == [1] { "argument" } else { "arguments" };
            return Err(self.error_at(start, &format!("{name} takes {takes} {plural}, got {}", arguments.len())));
        }
        // Digits written as a number are checked now, not refused with every record.
        if let (Function::Round, [_, Expression::Number(digits)]) = (function, arguments.as_slice())
            && (digits.fract() != 0.0 || !digits.is_finite())
        {
            return Err(self.error_at(start, &format!("round: the number of digits must be a whole number, not {digits}")));
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

    #[test]
    fn rounding_to_digits_rounds_the_decimal_the_number_is_written_as() {
        let round = |x: f64, digits: f64| round_to_digits(x, digits).unwrap();
        assert_eq!(round(2.675, 2.0), 2.68, "2.675's double is a little less than 2.675");
        assert_eq!(round(0.0045, 3.0), 0.005);
        assert_eq!(round(1.005, 2.0), 1.01);
        assert_eq!(round(0.125, 2.0), 0.13, "a tie goes away from zero");
        assert_eq!(round(-0.125, 2.0), -0.13);
        assert_eq!(round(2.674999, 2.0), 2.67);
        assert_eq!(round(1234.5678, -2.0), 1200.0);
        assert_eq!(round(-1250.0, -2.0), -1300.0);
        assert_eq!(round(1234.5678, -400.0), 0.0);
        assert_eq!(round(1234.5678, 400.0), 1234.5678);
        assert_eq!(round(1e300, 2.0), 1e300);
        assert_eq!(round(123456789012345.67, 1.0), 123456789012345.7);
        assert_eq!(round(5e-324, 2.0), 0.0);
        assert!(round_to_digits(2.71, 1.5).unwrap_err().contains("whole number"));
        assert!(Expression::parse("round(x, 1.5)").unwrap_err().contains("must be a whole number, not 1.5"));
        assert!(Expression::parse("round(x, -2)").is_ok());
        assert_eq!(Expression::parse("min(a)").unwrap_err(), "min takes 2 arguments, got 1 at character 1 of \"min(a)\"");
        assert!(Expression::parse("round(a, 1, 2)").unwrap_err().starts_with("round takes 1 or 2 arguments, got 3"));
        assert_eq!(
            evaluate("round(x, d)", serde_json::json!({"x": 2.5, "d": 0.5})).unwrap_err(),
            "round: the number of digits must be a whole number, not 0.5"
        );
    }

    proptest::proptest! {
        #[test]
        fn rounding_to_digits_equals_rounding_the_decimal_text(
            units in -10_000_000_000_000i64..10_000_000_000_000, places in 0i32..=8, digits in -3i32..=8
        ) {
            // x is written `units · 10^-places` (at most 14 digits, so that is its shortest
            // text); rounding that decimal half away from zero is integer arithmetic.
            let x: f64 = format!("{units}e{}", -places).parse().unwrap();
            proptest::prop_assume!(x != 0.0);
            let dropped = places - digits;
            let expected = if dropped <= 0 {
                x
            } else if dropped > 18 {
                0.0
            } else {
                let unit = 10i64.pow(dropped as u32);
                let whole = (units.abs() + unit / 2) / unit * units.signum();
                format!("{whole}e{}", -digits).parse().unwrap()
            };
            proptest::prop_assert_eq!(round_to_digits(x, digits as f64).unwrap(), expected, "x = {}, digits = {}", x, digits);
        }

        #[test]
        fn a_decimal_tie_goes_away_from_zero(head in -1_000_000_000_000i64..1_000_000_000_000, places in 1i32..=12) {
            // x = head.5 · 10^-(places - 1): a tie at the last place, as 2.675 to 2 places.
            let units = if head < 0 { head * 10 - 5 } else { head * 10 + 5 };
            let x: f64 = format!("{units}e{}", -places).parse().unwrap();
            let whole = (units.abs() + 5) / 10 * units.signum();
            let expected: f64 = format!("{whole}e{}", -(places - 1)).parse().unwrap();
            proptest::prop_assert_eq!(round_to_digits(x, (places - 1) as f64).unwrap(), expected, "x = {}", x);
        }
    }
}
