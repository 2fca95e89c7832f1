//! Typed, versioned operator state: what `snapshot` writes and `restore` reads.
//!
//! A plugin keeps its state in a serde type that implements [`VersionedState`]. Bump
//! `VERSION` whenever the type's layout changes, and teach `migrate` to read the older
//! layouts: hot swap and restarts hand the new version of the plugin the old bytes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::State;

/// Operator state with a format version.
pub trait VersionedState: Serialize + DeserializeOwned {
    /// The format version written by [`State::encode`].
    const VERSION: u32;

    /// Reads state written by another version of the plugin (`version != VERSION`).
    /// Decode the old layout with [`decode_bytes`] into the old type and convert it.
    /// The default refuses, which makes a hot swap roll back.
    fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
        let _ = bytes;
        Err(format!("cannot read state version {version}: this plugin reads version {}", Self::VERSION))
    }
}

impl State {
    /// No state: what stateless operators snapshot.
    pub fn empty() -> State {
        State { version: 0, bytes: Vec::new() }
    }

    /// Whether this is no state (version 0, no bytes): what a stateless operator snapshots.
    /// The SDK does not hand it to `restore`: the freshly initialised operator has it already,
    /// so a version that gains state starts fresh after one that had none.
    pub fn is_empty(&self) -> bool {
        self.version == 0 && self.bytes.is_empty()
    }

    /// Encodes `value` (compact binary, postcard) tagged with its `VERSION`.
    pub fn encode<T: VersionedState>(value: &T) -> State {
        // Sized first, then written into a buffer of exactly that size: a growing buffer would
        // need up to twice the state's size at once, inside the plugin's memory limit.
        // postcard fails only on types serde cannot describe (e.g. unsized sequences);
        // that is a plugin bug, and the panic traps the snapshot with this message.
        let encoded = postcard::experimental::serialized_size(value).and_then(|size| postcard::to_extend(value, Vec::with_capacity(size)));
        match encoded {
            Ok(bytes) => State { version: T::VERSION, bytes },
            Err(error) => panic!("cannot encode operator state: {error}"),
        }
    }

    /// Decodes state of version `T::VERSION`, or migrates an older one.
    pub fn decode<T: VersionedState>(&self) -> Result<T, String> {
        if self.version == T::VERSION { decode_bytes(&self.bytes) } else { T::migrate(self.version, &self.bytes) }
    }
}

/// Decodes bytes written by [`State::encode`] as `T`, typically an older state type
/// inside [`VersionedState::migrate`]. Every byte must be read: postcard reads a prefix of
/// other bytes without complaint (the JSON `{"count": 2872}` of a plugin in another language
/// read as a count of 123), so bytes left over mean another layout, refused rather than misread.
pub fn decode_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|error| format!("state is corrupt or of another layout: {error}"))?;
    match rest.len() {
        0 => Ok(value),
        left => Err(format!(
            "state is of another layout: {left} of its {} bytes are left over once read (written by another plugin, or \
             another language's build of this one?)",
            bytes.len()
        )),
    }
}

/// How a restored state's entries (averages, detectors, aggregates: one per place of the
/// configuration it was made for, `then` places) are matched up with a new configuration's
/// (`now` places), so that a state is never read by position alone: for each new place, the
/// old place it continues, if any. `passes` are tried in turn, each over the places still
/// unmatched (typically: the same definition first, then the same name with state of the same
/// kind); an old place is taken once, the first that matches in order, so that equal entries
/// keep their order.
pub fn matched_positions(then: usize, now: usize, passes: &[&dyn Fn(usize, usize) -> bool]) -> Vec<Option<usize>> {
    let mut sources = vec![None; now];
    let mut taken = vec![false; then];
    for pass in passes {
        for (new, source) in sources.iter_mut().enumerate().filter(|(_, source)| source.is_none()) {
            if let Some(old) = (0..then).find(|&old| !taken[old] && pass(old, new)) {
                taken[old] = true;
                *source = Some(old);
            }
        }
    }
    sources
}

/// What one entry of a configuration (an average, a detector) is, as a state records it
/// beside what the entry keeps, so that a restore under another configuration matches entries
/// up with [`EntryDefinition::matched`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EntryDefinition {
    /// Its name in the configuration (an output field, a detector's `name`).
    pub name: String,
    /// What must agree for its state to be continued at all: the kind of state and what it is
    /// kept over (`price exponential-alpha`).
    pub family: String,
    /// Its settings within the family (`0.3`, `window 10`).
    pub parameters: String,
}

impl EntryDefinition {
    /// For each entry of `now`, the entry of `then` whose state it continues: the same
    /// definition under the same name first (two alike keep each its own state whatever their
    /// order), then the same definition under any name (a rename), then the same family under
    /// the same name (retuned settings go on from there); none starts afresh.
    pub fn matched(then: &[EntryDefinition], now: &[EntryDefinition]) -> Vec<Option<usize>> {
        let same = |old: usize, new: usize| then[old].family == now[new].family && then[old].parameters == now[new].parameters;
        let named = |old: usize, new: usize| then[old].name == now[new].name;
        matched_positions(
            then.len(),
            now.len(),
            &[&|old, new| same(old, new) && named(old, new), &same, &|old, new| then[old].family == now[new].family && named(old, new)],
        )
    }
}

/// `items` put in the places `sources` gives (from [`matched_positions`]); a place without a
/// source gets `fresh(place)`.
pub fn rearranged<T>(items: Vec<T>, sources: &[Option<usize>], mut fresh: impl FnMut(usize) -> T) -> Vec<T> {
    let mut items: Vec<Option<T>> = items.into_iter().map(Some).collect();
    sources
        .iter()
        .enumerate()
        .map(|(place, source)| source.and_then(|old| items.get_mut(old)?.take()).unwrap_or_else(|| fresh(place)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_matched_by_the_first_pass_that_matches_each_old_one_once_in_order() {
        let then = ["a", "b", "a", "c"];
        let now = ["c", "a", "a", "a", "d"];
        let same: &dyn Fn(usize, usize) -> bool = &|old, new| then[old] == now[new];
        assert_eq!(matched_positions(4, 5, &[same]), vec![Some(3), Some(0), Some(2), None, None]);
        let any: &dyn Fn(usize, usize) -> bool = &|_, _| true;
        assert_eq!(matched_positions(4, 5, &[same, any]), vec![Some(3), Some(0), Some(2), Some(1), None]);
        assert_eq!(rearranged(vec![10, 20, 30, 40], &[Some(3), None, Some(0)], |place| place * 100), vec![40, 100, 10]);
    }
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct CountV1 {
        count: u32,
    }
    impl VersionedState for CountV1 {
        const VERSION: u32 = 1;
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct CountV2 {
        count: u64,
        label: String,
    }
    impl VersionedState for CountV2 {
        const VERSION: u32 = 2;
        fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
            match version {
                1 => decode_bytes::<CountV1>(bytes).map(|old| CountV2 { count: old.count.into(), label: String::new() }),
                _ => Err(format!("unknown state version {version}")),
            }
        }
    }

    #[test]
    fn bytes_of_another_layout_are_refused_not_read_in_part() {
        let refused = decode_bytes::<CountV1>(br#"{"count": 2872}"#).unwrap_err();
        assert!(refused.contains("14 of its 15 bytes are left over"), "{refused}");
        let encoded = State::encode(&CountV1 { count: 2872 });
        assert_eq!(encoded.decode::<CountV1>(), Ok(CountV1 { count: 2872 }));
    }

    /// An operator whose snapshot/restore come from `state_in!`.
    struct Counting {
        counts: CountV2,
    }

    impl crate::Operator for Counting {
        type Config = ();
        fn init((): ()) -> Result<Self, String> {
            Ok(Counting { counts: CountV2 { count: 0, label: String::new() } })
        }
        fn process(&mut self, batch: &crate::Batch, _: &mut crate::Output) {
            self.counts.count += batch.len() as u64;
        }
        fn distribution(&self) -> crate::Distribution {
            crate::Distribution::Single
        }
        crate::state_in!(counts);
    }

    #[test]
    fn state_in_generates_snapshot_and_restore_with_migration() {
        use crate::Operator;
        let mut counting = Counting::init(()).unwrap();
        counting.process(&crate::testing::json_batch(&[(serde_json::json!({}), 0)]), &mut crate::Output::default());
        let mut restored = Counting::init(()).unwrap();
        restored.restore(counting.snapshot()).unwrap();
        assert_eq!(restored.counts.count, 1);
        restored.restore(State::encode(&CountV1 { count: 41 })).unwrap();
        assert_eq!(restored.counts.count, 41, "version 1 state is migrated");
        assert!(restored.restore(State { version: 9, bytes: vec![] }).is_err());
        // A stateless version's snapshot (no state) gives the operator as `init` made it.
        let fresh = crate::testing::Harness::<Counting>::restored(serde_json::Value::Null, State::empty()).unwrap();
        assert_eq!(fresh.snapshot(), Counting::init(()).unwrap().snapshot());
    }

    #[test]
    fn the_readme_plugin_example_is_the_compiled_one() {
        let readme = include_str!("../../README.md");
        assert!(readme.contains(include_str!("../doc/cap.rs")), "README.md's plugin example differs from sdk/doc/cap.rs");
    }

    #[test]
    fn state_round_trips_and_migrates() {
        let v1 = State::encode(&CountV1 { count: 7 });
        assert_eq!(v1.version, 1);
        assert_eq!(v1.decode::<CountV1>().unwrap(), CountV1 { count: 7 });
        assert_eq!(v1.decode::<CountV2>().unwrap(), CountV2 { count: 7, label: String::new() });
        let v2 = State::encode(&CountV2 { count: 9, label: "x".into() });
        assert!(v2.decode::<CountV1>().unwrap_err().contains("cannot read state version 2"));
    }
}
