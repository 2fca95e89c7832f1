//! JSON-lines sources: a file read to its end, or standard input until it closes.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sluice_sdk::fields::Indexer;

use super::{SourceError, SourceOutput, TimestampField};

/// How long a source waits for input before checking whether it must stop.
const POLL: Duration = Duration::from_millis(50);

enum Input {
    File(BufReader<File>),
    Stdin,
}

/// Reads JSON lines; a line is a record (empty lines are skipped).
pub struct JsonLinesSource {
    name: String,
    input: Input,
    timestamp: TimestampField,
}

impl JsonLinesSource {
    pub fn file(name: String, path: &Path, timestamp: TimestampField) -> Result<JsonLinesSource, SourceError> {
        let file =
            File::open(path).map_err(|error| SourceError::Open { source_name: name.clone(), path: path.display().to_string(), error })?;
        Ok(JsonLinesSource { name, input: Input::File(BufReader::new(file)), timestamp })
    }

    pub fn stdin(name: String, timestamp: TimestampField) -> JsonLinesSource {
        JsonLinesSource { name, input: Input::Stdin, timestamp }
    }

    pub fn run(self, output: &mut SourceOutput) -> Result<(), SourceError> {
        match self.input {
            Input::File(reader) => read_lines(&self.name, reader, LineRecords::new(self.timestamp), output),
            Input::Stdin => read_stdin(&self.name, LineRecords::new(self.timestamp), output),
        }
    }
}

fn read_lines(name: &str, mut reader: BufReader<File>, mut records: LineRecords, output: &mut SourceOutput) -> Result<(), SourceError> {
    let mut line = Vec::new();
    let length_at_start = reader.get_ref().metadata().map_or(0, |metadata| metadata.len());
    loop {
        // Reading past the buffer may block (a FIFO, a file still being written): what
        // lingers goes first, and checkpoint barriers are taken.
        if reader.buffer().is_empty() && output.flush_lingering().is_err() {
            return Ok(());
        }
        line.clear();
        let length = read_line_within(&mut reader, &mut line).map_err(|error| SourceError::Read { source_name: name.into(), error })?;
        if length.read == 0 {
            warn_if_shrunk(name, &mut reader, length_at_start);
            break;
        }
        if output.stop.is_raised() {
            break;
        }
        if records.deliver(&line, (length.content > MAX_LINE_BYTES).then_some(length.content), output).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// At the end of a file: says so if it is now shorter than it was when reading began or than
/// what was read of it (cut while it was read), since its last line read may have been cut.
fn warn_if_shrunk(name: &str, reader: &mut BufReader<File>, length_at_start: u64) {
    use std::io::Seek;
    let (Ok(read), Ok(metadata)) = (reader.stream_position(), reader.get_ref().metadata()) else { return };
    if metadata.is_file() && metadata.len() < read.max(length_at_start) {
        tracing::warn!(
            source = name,
            read,
            length_at_start,
            length = metadata.len(),
            "the file is shorter than when reading began: it was cut while it was read, and its last line read may be \
             incomplete (a dead letter if it is not a JSON object)"
        );
    }
}

/// The longest line read as a record: a longer one goes to the dead-letter sink with its first
/// [`KEPT_OF_A_LONG_LINE`] bytes, and the source reads on after it. A source must not hold a
/// line without end (`/dev/zero`, a binary file) in memory.
pub const MAX_LINE_BYTES: usize = 64 << 20;
/// What a dead letter keeps of a line longer than [`MAX_LINE_BYTES`].
const KEPT_OF_A_LONG_LINE: usize = 4096;

/// A line read: its bytes with its ending (`\n`, and `\r`s before it), and without.
#[derive(Debug, PartialEq, Eq)]
struct LineLength {
    read: usize,
    content: usize,
}

/// Room past [`MAX_LINE_BYTES`] for a line's ending (`\r\n`), which is not part of its record.
const LINE_ENDING_ROOM: usize = 2;

/// Reads the next line (with its newline, if it has one) onto the end of `line`, and returns
/// its lengths (0 read at the end of the input). Of a line whose content is longer than
/// [`MAX_LINE_BYTES`] only its first [`KEPT_OF_A_LONG_LINE`] bytes are left in `line`.
fn read_line_within(input: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<LineLength> {
    let start = line.len();
    let mut whole = 0;
    // The line's ending so far: the `\r` and `\n` bytes that end what was read.
    let mut ending = 0;
    loop {
        let buffer = match input.fill_buf() {
            Ok(buffer) => buffer,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if buffer.is_empty() {
            break;
        }
        let (piece, ends) = match memchr::memchr(b'\n', buffer) {
            Some(newline) => (&buffer[..=newline], true),
            None => (buffer, false),
        };
        let room = (MAX_LINE_BYTES + LINE_ENDING_ROOM).saturating_sub(whole);
        line.extend_from_slice(&piece[..piece.len().min(room)]);
        let used = piece.len();
        let piece_ending = piece.iter().rev().take_while(|byte| matches!(byte, b'\n' | b'\r')).count();
        ending = if piece_ending == used { ending + used } else { piece_ending };
        whole += used;
        input.consume(used);
        if ends {
            break;
        }
    }
    let content = whole - ending;
    if content > MAX_LINE_BYTES {
        line.truncate(start + KEPT_OF_A_LONG_LINE);
    }
    Ok(LineLength { read: whole, content })
}

/// Standard input blocks; a reader thread feeds lines so that batches still linger on time.
/// It sends them in chunks (a channel message per line cost more than the rest of the
/// source): a chunk goes when it is full, or when no whole line is left to read without
/// waiting for more input.
fn read_stdin(name: &str, mut records: LineRecords, output: &mut SourceOutput) -> Result<(), SourceError> {
    let mut reader = STDIN_CHUNKS.lock().unwrap_or_else(PoisonError::into_inner);
    if reader.is_none() {
        *reader = Some(start_stdin_reader().map_err(|error| SourceError::Read { source_name: name.into(), error })?);
    }
    let Some(incoming) = reader.as_ref() else { return Ok(()) };
    while !output.stop.is_raised() {
        let wait = output.linger_left().unwrap_or(POLL).min(POLL);
        match incoming.recv_timeout(wait) {
            Ok(chunk) => {
                let chunk = chunk.map_err(|error| SourceError::Read { source_name: name.into(), error })?;
                if chunk.lines().try_for_each(|(line, cut)| records.deliver(line, cut, output)).is_err() {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if output.wait_for_input().is_err() {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    Ok(())
}

/// The chunks of standard input, read by one thread for the whole process: a pipeline that a
/// reload restarts goes on with the next line. A reader per run would lose the lines the old
/// one had read (it is blocked in a read when its run stops) and race the new one for input.
/// Held by the running stdin source; the next one waits for it.
static STDIN_CHUNKS: Mutex<Option<Receiver<std::io::Result<LineChunk>>>> = Mutex::new(None);

fn start_stdin_reader() -> std::io::Result<Receiver<std::io::Result<LineChunk>>> {
    let (chunks, incoming) = mpsc::sync_channel::<std::io::Result<LineChunk>>(CHUNKS_IN_FLIGHT);
    std::thread::Builder::new()
        .name("sluice-stdin".into())
        .spawn(move || read_chunks(BufReader::with_capacity(STDIN_BUFFER, std::io::stdin()), &chunks))?;
    Ok(incoming)
}

/// Lines read together: their bytes, one after the other, and where each ends; and the lines
/// longer than [`MAX_LINE_BYTES`], cut, with their whole length.
#[derive(Default)]
struct LineChunk {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    cut: Vec<(usize, usize)>,
}

impl LineChunk {
    /// Each line, with its whole length if it was cut.
    fn lines(&self) -> impl Iterator<Item = (&[u8], Option<usize>)> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).enumerate().map(|(number, (start, end))| {
            let cut = self.cut.iter().find(|(line, _)| *line == number).map(|(_, whole)| *whole);
            (&self.bytes[start..*end], cut)
        })
    }
}

/// A chunk is sent once it holds this many lines or bytes; at most this many chunks wait for
/// the source.
const LINES_PER_CHUNK: usize = 1024;
const BYTES_PER_CHUNK: usize = 1 << 20;
const CHUNKS_IN_FLIGHT: usize = 4;

/// Bytes read from standard input at a time (its own buffer, of 8 KiB, is then bypassed).
const STDIN_BUFFER: usize = 64 << 10;

/// Reads `input` to its end into chunks of lines sent on `chunks` (a read error is sent, and
/// ends the reading); returns when the input ends or the source stops taking chunks.
fn read_chunks(mut input: BufReader<impl Read>, chunks: &SyncSender<std::io::Result<LineChunk>>) {
    let mut chunk = LineChunk::default();
    loop {
        match read_line_within(&mut input, &mut chunk.bytes) {
            Ok(LineLength { read: 0, .. }) => break,
            Ok(LineLength { content, .. }) => {
                if content > MAX_LINE_BYTES {
                    chunk.cut.push((chunk.ends.len(), content));
                }
                chunk.ends.push(chunk.bytes.len());
            }
            Err(error) => {
                let _ = chunks.send(Err(error));
                return;
            }
        }
        // Without a whole line buffered, the next line's read may block: what was read goes
        // first.
        let full = chunk.ends.len() >= LINES_PER_CHUNK || chunk.bytes.len() >= BYTES_PER_CHUNK;
        let ready = full || !input.buffer().contains(&b'\n');
        if ready && chunks.send(Ok(std::mem::take(&mut chunk))).is_err() {
            return;
        }
    }
    if !chunk.ends.is_empty() {
        let _ = chunks.send(Ok(chunk));
    }
}

/// What a file saved as "UTF-8 with BOM" starts with.
const UTF8_BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// Lines made records: numbered from 1 (a record's position), their event time read.
struct LineRecords {
    timestamp: TimestampField,
    /// Finds a line's fields once, for its event time and its field index.
    indexer: Indexer,
    number: u64,
}

impl LineRecords {
    fn new(timestamp: TimestampField) -> LineRecords {
        LineRecords { timestamp, indexer: Indexer::default(), number: 0 }
    }

    /// Turns the next line into a record (or a dead letter when its event time cannot be
    /// read). A line whose time is a field of it is scanned once: for the time, and for the
    /// record's field index.
    /// A line `cut` from its whole length goes to the dead-letter sink.
    fn deliver(&mut self, line: &[u8], cut: Option<usize>, output: &mut SourceOutput) -> Result<(), super::Downstream> {
        self.number += 1;
        let number = self.number;
        if let Some(whole) = cut {
            let reason = format!(
                "line {number}: {whole} bytes is more than a record may have ({} MiB): the first {} bytes are kept here",
                MAX_LINE_BYTES >> 20,
                line.len()
            );
            return output.dead_letter(line, number, reason);
        }
        let mut line = line;
        while let [rest @ .., b'\n' | b'\r'] = line {
            line = rest;
        }
        // A byte order mark some editors put at the start of a UTF-8 file is not part of the
        // first record.
        if number == 1
            && let Some(rest) = line.strip_prefix(UTF8_BYTE_ORDER_MARK)
        {
            line = rest;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let fields = if self.timestamp.reads_record() { self.indexer.scan(line) } else { None };
        match self.timestamp.extract(line, fields) {
            Ok(time) => output.emit_scanned(None, line, fields, time, number),
            Err(reason) => output.dead_letter(line, number, format!("line {number}: {reason}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{Receiver, sync_channel};
    use std::time::Duration;

    use super::*;

    /// Serves `first`, then waits for `rest` (as standard input waits for a writer).
    struct SlowInput {
        first: Option<Vec<u8>>,
        rest: Receiver<Vec<u8>>,
    }

    impl Read for SlowInput {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let bytes = match self.first.take() {
                Some(bytes) => bytes,
                None => self.rest.recv().unwrap_or_default(),
            };
            buffer[..bytes.len()].copy_from_slice(&bytes);
            Ok(bytes.len())
        }
    }

    fn lines_of(chunk: &LineChunk) -> Vec<&[u8]> {
        chunk.lines().map(|(line, _)| line).collect()
    }

    #[test]
    fn whole_lines_are_sent_before_a_read_that_waits_for_more_input() {
        let (more, rest) = sync_channel(1);
        let (chunks, incoming) = sync_channel(CHUNKS_IN_FLIGHT);
        let input = SlowInput { first: Some(b"a\nb\r\nc".to_vec()), rest };
        let reader = std::thread::spawn(move || read_chunks(BufReader::new(input), &chunks));
        let first = incoming.recv_timeout(Duration::from_secs(10)).expect("the whole lines, before more input").unwrap();
        assert_eq!(lines_of(&first), [&b"a\n"[..], b"b\r\n"]);
        more.send(b"d\ne".to_vec()).unwrap();
        let second = incoming.recv_timeout(Duration::from_secs(10)).expect("the line completed").unwrap();
        assert_eq!(lines_of(&second), [&b"cd\n"[..]]);
        drop(more);
        let last = incoming.recv_timeout(Duration::from_secs(10)).expect("the last line, without its newline").unwrap();
        assert_eq!(lines_of(&last), [&b"e"[..]]);
        reader.join().unwrap();
        assert!(incoming.recv().is_err(), "nothing after the end");
    }

    #[test]
    fn a_line_of_the_longest_a_record_may_be_is_read_whole_with_its_ending() {
        for ending in [&b"\n"[..], b"\r\n", b""] {
            let mut text = vec![b'x'; MAX_LINE_BYTES];
            text.extend_from_slice(ending);
            let mut line = Vec::new();
            let length = read_line_within(&mut BufReader::new(&text[..]), &mut line).unwrap();
            assert_eq!(length, LineLength { read: MAX_LINE_BYTES + ending.len(), content: MAX_LINE_BYTES });
            assert_eq!(line.len(), text.len(), "kept whole");
        }
        let mut text = vec![b'x'; MAX_LINE_BYTES + 1];
        text.extend_from_slice(b"\r\n");
        let mut line = Vec::new();
        assert_eq!(read_line_within(&mut BufReader::new(&text[..]), &mut line).unwrap().content, MAX_LINE_BYTES + 1);
        assert_eq!(line.len(), KEPT_OF_A_LONG_LINE, "one byte too many");
    }

    #[test]
    fn a_line_longer_than_a_record_may_be_is_cut_and_the_next_read_whole() {
        let mut text = vec![b'x'; MAX_LINE_BYTES + 10];
        text.extend_from_slice(b"\n{\"n\":1}\n{\"n\":2}");
        let mut input = BufReader::new(&text[..]);
        let mut line = Vec::new();
        assert_eq!(
            read_line_within(&mut input, &mut line).unwrap(),
            LineLength { read: MAX_LINE_BYTES + 11, content: MAX_LINE_BYTES + 10 }
        );
        assert_eq!(line.len(), KEPT_OF_A_LONG_LINE);
        line.clear();
        assert_eq!(read_line_within(&mut input, &mut line).unwrap(), LineLength { read: 8, content: 7 });
        assert_eq!(line, b"{\"n\":1}\n");
        line.clear();
        assert_eq!(read_line_within(&mut input, &mut line).unwrap(), LineLength { read: 7, content: 7 });
        assert_eq!(line, b"{\"n\":2}");
        assert_eq!(read_line_within(&mut input, &mut line).unwrap().read, 0);

        let (chunks, incoming) = sync_channel(16);
        read_chunks(BufReader::new(&text[..]), &chunks);
        drop(chunks);
        let lines: Vec<(Vec<u8>, Option<usize>)> =
            incoming.iter().flat_map(|chunk| chunk.unwrap().lines().map(|(line, cut)| (line.to_vec(), cut)).collect::<Vec<_>>()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!((lines[0].0.len(), lines[0].1), (KEPT_OF_A_LONG_LINE, Some(MAX_LINE_BYTES + 10)));
        assert_eq!(lines[1], (b"{\"n\":1}\n".to_vec(), None));
        assert_eq!(lines[2], (b"{\"n\":2}".to_vec(), None));
    }

    #[test]
    fn chunks_hold_at_most_their_lines_and_about_their_bytes() {
        let text: Vec<u8> = (0..LINES_PER_CHUNK * 2 + 5).flat_map(|n| format!("{{\"n\":{n}}}\n").into_bytes()).collect();
        let (chunks, incoming) = sync_channel(16);
        read_chunks(BufReader::new(&text[..]), &chunks);
        drop(chunks);
        let sizes: Vec<usize> = incoming.iter().map(|chunk| chunk.unwrap().ends.len()).collect();
        assert!(sizes.iter().all(|size| *size <= LINES_PER_CHUNK), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), LINES_PER_CHUNK * 2 + 5);

        // Long lines: a chunk goes once it holds a mebibyte (and the line that crossed it).
        let line = format!("{{\"x\":\"{}\"}}\n", "y".repeat(300_000));
        let text = line.repeat(10);
        let (chunks, incoming) = sync_channel(16);
        read_chunks(BufReader::new(text.as_bytes()), &chunks);
        drop(chunks);
        let chunks: Vec<LineChunk> = incoming.iter().map(Result::unwrap).collect();
        assert!(chunks.iter().all(|chunk| chunk.bytes.len() < BYTES_PER_CHUNK + line.len()), "chunks of at most 4 such lines");
        assert_eq!(chunks.iter().map(|chunk| chunk.ends.len()).sum::<usize>(), 10);
        assert!(chunks.iter().flat_map(LineChunk::lines).all(|(read, cut)| read == line.as_bytes() && cut.is_none()));
    }
}
