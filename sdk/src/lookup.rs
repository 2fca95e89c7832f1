//! Reading a record's fields through its index: which indexed field each wanted path names,
//! with the paths a plugin reads from every record prepared once ([`FieldLookup`]).

use crate::fields::{FieldIndex, text_of};
use crate::json::FieldPath;
use crate::text::same_bytes;

/// Paths a plugin reads from every record, prepared once: which are single names, grouped by
/// their length, and each short name as one machine word, so that a field's name is told
/// apart from the wanted ones by a word comparison instead of a byte loop. Read with
/// [`crate::Record::look_up_into`].
#[derive(Debug, Clone)]
pub struct FieldLookup {
    paths: Vec<FieldPath>,
    classes: LengthClasses,
    /// For each of the first 64 paths: its name as a word ([`name_word`]) and its length,
    /// when it is a single name of at most eight bytes.
    words: Vec<Option<(u64, usize)>>,
    /// Paths read one by one: deeper ones, and any past the 64th.
    others: Vec<usize>,
}

/// Two lookups are equal when they read the same paths (all else is made from them).
impl PartialEq for FieldLookup {
    fn eq(&self, other: &FieldLookup) -> bool {
        self.paths == other.paths
    }
}

impl Eq for FieldLookup {}

impl FieldLookup {
    pub fn new(paths: Vec<FieldPath>) -> FieldLookup {
        let classes = LengthClasses::of(&paths);
        let words = paths
            .iter()
            .take(64)
            .map(|path| single_name(path).and_then(|name| Some((padded_word(name.as_bytes())?, name.len()))))
            .collect();
        let others = classes.others(paths.len()).collect();
        FieldLookup { paths, classes, words, others }
    }

    /// The paths, in the order their texts are found.
    pub fn paths(&self) -> &[FieldPath] {
        &self.paths
    }
}

/// The texts at the paths `wanted` names in the JSON value `bytes` into `found` (its contents
/// replaced): through `index` when there is one that agrees with the text, else by reading the
/// text.
pub(crate) fn texts_into<'a>(
    bytes: &'a [u8],
    index: Option<FieldIndex<'_>>,
    wanted: &impl WantedNames,
    found: &mut Vec<Option<&'a [u8]>>,
) -> Result<(), String> {
    if let Some(index) = index
        && indexed_texts(bytes, index, wanted, found).is_some()
        && fill_from_indexed_whole_names(bytes, index, wanted.paths(), found).is_some()
    {
        return Ok(());
    }
    *found = crate::json::lookup_texts(bytes, wanted.paths())?;
    Ok(())
}

/// Gives each path of several segments that found nothing the value of the indexed top-level
/// field spelt like the whole path ([`FieldPath::whole_name`]), with no allocation; `None` when
/// the index points outside the value.
fn fill_from_indexed_whole_names<'a>(
    bytes: &'a [u8],
    index: FieldIndex<'_>,
    paths: &[FieldPath],
    found: &mut [Option<&'a [u8]>],
) -> Option<()> {
    for (slot, path) in paths.iter().enumerate() {
        if found[slot].is_none()
            && path.segments().len() > 1
            && let Some(text) = index.values_named(bytes, path.as_str()).next()
        {
            found[slot] = Some(text?);
        }
    }
    Some(())
}

/// How a lookup tells which of its paths a field's name is.
pub(crate) trait WantedNames {
    fn paths(&self) -> &[FieldPath];
    fn classes(&self) -> &LengthClasses;
    /// Positions of the paths not matched by name ([`LengthClasses::others`]).
    fn others(&self) -> impl Iterator<Item = usize>;
    /// Whether `name` is the name of the single-name path at `position`.
    fn is_named(&self, position: usize, name: &NameText<'_>) -> bool;
}

impl WantedNames for FieldLookup {
    fn paths(&self) -> &[FieldPath] {
        &self.paths
    }

    fn classes(&self) -> &LengthClasses {
        &self.classes
    }

    fn others(&self) -> impl Iterator<Item = usize> {
        self.others.iter().copied()
    }

    #[inline]
    fn is_named(&self, position: usize, name: &NameText<'_>) -> bool {
        match (self.words[position], name.word) {
            (Some((wanted, length)), Some(word)) => wanted == word && length == name.text.len(),
            _ => same_name(&self.paths[position], name),
        }
    }
}

/// Paths looked up once, unprepared: the classes are made for the call, names compared as
/// bytes.
pub(crate) struct PathsOnce<'p> {
    paths: &'p [FieldPath],
    classes: LengthClasses,
}

impl<'p> PathsOnce<'p> {
    pub(crate) fn new(paths: &'p [FieldPath]) -> PathsOnce<'p> {
        PathsOnce { paths, classes: LengthClasses::of(paths) }
    }
}

impl WantedNames for PathsOnce<'_> {
    fn paths(&self) -> &[FieldPath] {
        self.paths
    }

    fn classes(&self) -> &LengthClasses {
        &self.classes
    }

    fn others(&self) -> impl Iterator<Item = usize> {
        self.classes.others(self.paths.len())
    }

    #[inline]
    fn is_named(&self, position: usize, name: &NameText<'_>) -> bool {
        same_name(&self.paths[position], name)
    }
}

fn same_name(path: &FieldPath, name: &NameText<'_>) -> bool {
    same_bytes(path.segments()[0].as_bytes(), name.text)
}

/// The single-name paths among the first 64 (bit i for path i), by their name's length
/// modulo [`LENGTH_CLASSES`], so that a field's name is compared only with names of its
/// length (and few others).
#[derive(Debug, Clone)]
pub(crate) struct LengthClasses {
    single_names: u64,
    by_length: [u64; LENGTH_CLASSES],
}

/// The classes of name lengths told apart. Unprepared lookups zero the table on every call,
/// so it is kept small: a 32-slot one measured no faster.
const LENGTH_CLASSES: usize = 8;

impl LengthClasses {
    fn of(paths: &[FieldPath]) -> LengthClasses {
        let mut classes = LengthClasses { single_names: 0, by_length: [0; LENGTH_CLASSES] };
        for (position, path) in paths.iter().enumerate().take(64) {
            if let Some(name) = single_name(path) {
                classes.single_names |= 1 << position;
                classes.by_length[name.len() % LENGTH_CLASSES] |= 1 << position;
            }
        }
        classes
    }

    /// Positions of the paths that are not single names among the first 64.
    fn others(&self, count: usize) -> impl Iterator<Item = usize> + '_ {
        (0..count).filter(|&position| position >= 64 || self.single_names & (1 << position) == 0)
    }
}

fn single_name(path: &FieldPath) -> Option<&str> {
    match path.segments() {
        [name] => Some(name),
        _ => None,
    }
}

/// A field's name in a record: its text, and as a word when it is short.
pub(crate) struct NameText<'a> {
    text: &'a [u8],
    word: Option<u64>,
}

/// The texts at the paths `wanted` names, through the index, into `found`; `None` when the
/// index points outside the value or the text below a field cannot be read. The first field
/// of a name wins, as in the text.
pub(crate) fn indexed_texts<'a>(
    bytes: &'a [u8],
    index: FieldIndex<'_>,
    wanted: &impl WantedNames,
    found: &mut Vec<Option<&'a [u8]>>,
) -> Option<()> {
    let paths = wanted.paths();
    found.clear();
    found.resize(paths.len(), None);
    for position in wanted.others() {
        found[position] = crate::json::indexed_text(bytes, index, &paths[position])?;
    }
    let classes = wanted.classes();
    let mut missing = classes.single_names;
    for field in index.fields() {
        if missing == 0 {
            break;
        }
        let mut candidates = missing & classes.by_length[field.name.1 % LENGTH_CLASSES];
        if candidates == 0 {
            continue;
        }
        let Some(text) = text_of(bytes, field.name) else { continue };
        let name = NameText { text, word: name_word(bytes, field.name) };
        while candidates != 0 {
            let position = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            if wanted.is_named(position, &name) {
                found[position] = Some(text_of(bytes, field.value)?);
                missing &= !(1 << position);
            }
        }
    }
    Some(())
}

/// The name at `(offset, length)` in `bytes` as a word, when it is at most eight bytes long
/// and eight bytes can be read from its start: its bytes little-endian, zero above them.
/// Names of different lengths can share a word (`a` and `a\0`): lengths are compared too.
fn name_word(bytes: &[u8], (offset, length): (usize, usize)) -> Option<u64> {
    if length > 8 {
        return None;
    }
    let chunk = bytes.get(offset..)?.first_chunk::<8>()?;
    Some(u64::from_le_bytes(*chunk) & low_bytes(length))
}

/// [`name_word`] of a wanted name.
fn padded_word(name: &[u8]) -> Option<u64> {
    if name.len() > 8 {
        return None;
    }
    let mut chunk = [0u8; 8];
    chunk[..name.len()].copy_from_slice(name);
    Some(u64::from_le_bytes(chunk))
}

/// The mask of a word's low `length` bytes.
fn low_bytes(length: usize) -> u64 {
    match length {
        8.. => u64::MAX,
        _ => (1 << (8 * length)) - 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(names: &[&str]) -> Vec<FieldPath> {
        names.iter().map(|name| FieldPath::parse(name).unwrap()).collect()
    }

    /// A prepared lookup finds what the unprepared one finds: the first of duplicated names,
    /// long and short names, names at the very end of the value (too close to it to be read as
    /// a word), deeper paths, and paths past the 64th.
    #[test]
    fn prepared_lookups_find_what_unprepared_ones_find() {
        let value = br#"{"x":1,"price":2,"price":3,"a-name-longer-than-8":{"b":[4]},"dateTime":5,"pricey":6,"":7,"k":8}"#;
        let mut index = Vec::new();
        assert!(crate::fields::append_index(value, &mut index));
        let index = FieldIndex::parse(&index).unwrap();
        let mut names: Vec<&str> =
            vec!["price", "k", "a-name-longer-than-8.b", "dateTime", "pricey", "x", "missing", "a-name-longer-than-8"];
        names.extend(std::iter::repeat_n("x", 60));
        names.extend(["k", "price", "dateTim"]);
        let paths = paths(&names);
        let (mut prepared, mut unprepared) = (Vec::new(), Vec::new());
        indexed_texts(value, index, &FieldLookup::new(paths.clone()), &mut prepared).unwrap();
        indexed_texts(value, index, &PathsOnce::new(&paths), &mut unprepared).unwrap();
        assert_eq!(prepared, unprepared);
        let text = |found: Option<&[u8]>| found.map(|text| String::from_utf8(text.to_vec()).unwrap());
        let found: Vec<Option<String>> = prepared.into_iter().map(text).collect();
        assert_eq!(
            found[..8],
            [Some("2"), Some("8"), Some("[4]"), Some("5"), Some("6"), Some("1"), None, Some(r#"{"b":[4]}"#)]
                .map(|text| text.map(str::to_owned))
        );
        assert_eq!(found[names.len() - 3..], [Some("8".to_owned()), Some("2".to_owned()), None]);
    }

    /// Words of names read from a record equal the wanted names' words, with their lengths,
    /// exactly when the names are the same bytes, whatever follows them.
    #[test]
    fn name_words_are_equal_exactly_for_equal_names() {
        let names: [&[u8]; 9] = [b"", b"a", b"ab", b"a\0", b"price", b"pricey", b"dateTime", b"dateTim", b"dateTimes"];
        for wanted in names {
            for name in names {
                let mut text = name.to_vec();
                text.extend_from_slice(b"\":12345678");
                let read = name_word(&text, (0, name.len()));
                match (padded_word(wanted), read) {
                    (Some(wanted_word), Some(word)) => {
                        assert_eq!(wanted_word == word && wanted.len() == name.len(), wanted == name, "{wanted:?} {name:?}")
                    }
                    _ => assert!(wanted.len() > 8 || name.len() > 8),
                }
            }
        }
    }
}
