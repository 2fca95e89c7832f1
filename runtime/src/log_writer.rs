//! Where the process's log goes: stderr, one event to one line. A message that quotes text
//! with line breaks (a plugin's panic naming a record, a dead letter's reason) has them
//! escaped as `\n` and `\r`, so that a line-based log reader sees one event as one line.

use std::io::Write;

/// Makes [`OneLineStderr`] writers for the log subscriber.
pub fn one_line_stderr() -> OneLineStderr {
    OneLineStderr
}

/// Stderr, given one formatted event per write (as `tracing_subscriber::fmt` writes them).
#[derive(Debug, Clone, Copy)]
pub struct OneLineStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for OneLineStderr {
    type Writer = OneLineStderr;

    fn make_writer(&'a self) -> OneLineStderr {
        OneLineStderr
    }
}

impl Write for OneLineStderr {
    fn write(&mut self, event: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().lock().write_all(&line_breaks_escaped(event))?;
        Ok(event.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `event` with its line breaks escaped, but the one that ends it.
fn line_breaks_escaped(event: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let body = event.strip_suffix(b"\n").unwrap_or(event);
    if !body.iter().any(|byte| matches!(byte, b'\n' | b'\r')) {
        return event.into();
    }
    let mut line = Vec::with_capacity(event.len() + 8);
    for byte in body {
        match byte {
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            other => line.push(*other),
        }
    }
    if body.len() < event.len() {
        line.push(b'\n');
    }
    line.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_line_whatever_its_message_quotes() {
        assert_eq!(&*line_breaks_escaped(b"plain event\n"), b"plain event\n");
        assert_eq!(
            &*line_breaks_escaped(b"WARN failed: poisoned record: {\"a\":\n\"x\"}\r\n"),
            b"WARN failed: poisoned record: {\"a\":\\n\"x\"}\\r\n"
        );
        assert_eq!(&*line_breaks_escaped(b"no end\nhere"), b"no end\\nhere");
    }
}
