//! Input records an operator passes on unchanged (`output.passed`, WIT 0.4.0): taken from the
//! runtime's own copy of the input batch instead of being copied back out of the sandbox.

use std::sync::Arc;

use sluice_sdk::{Batch, Event};

use super::bindings::wit;
use super::convert::IndexesBeside;
use super::records::Records;

/// Refuses a passed record that is not in the input batch of `inputs` records, or that goes
/// to an output the operator did not declare, and more passed records than the input has
/// records times its outputs (each may go to each output once, or as often in all); the
/// message says which.
pub fn check_passed(passed: &[wit::Passed], inputs: usize, side_outputs: u32, rejected: &[(u32, String)]) -> Result<(), String> {
    let outputs = side_outputs as usize + 1;
    if passed.len() > inputs.saturating_mul(outputs) {
        return Err(format!("it passes {} records on, more than its {inputs} input record(s) times its {outputs} output(s)", passed.len()));
    }
    // Rejections are checked first: each names a record of the batch.
    let mut refused = vec![false; if rejected.is_empty() { 0 } else { inputs }];
    for (index, _) in rejected {
        if let Some(slot) = refused.get_mut(*index as usize) {
            *slot = true;
        }
    }
    for (position, record) in passed.iter().enumerate() {
        if refused.get(record.index as usize).copied().unwrap_or(false) {
            return Err(format!(
                "input record {} is both rejected and passed on (passed record {position}): a record is refused or kept, not both",
                record.index
            ));
        }
        if record.index as usize >= inputs {
            return Err(format!(
                "passed record {position} is input record {}, but the batch it was given has {inputs} record(s)",
                record.index
            ));
        }
        if record.port > side_outputs {
            return Err(format!(
                "passed record {position} goes to output {}, but the plugin declared {side_outputs} side output(s)",
                record.port
            ));
        }
    }
    Ok(())
}

/// The records of an operator's output, in order: the input records `passed` names (checked
/// by [`check_passed`]), then those it `returned`. `beside` holds the field indexes the runtime
/// built for this call, when it built any: a passed record keeps its index, which describes
/// its unchanged value.
///
/// When the operator returned nothing and no index was built beside its input, the records
/// passed on are a [`Records::selection`] of the batch they are in (the input's, or the one an
/// input selection shares): shared, not copied, while they are at least half of its records.
/// Measured against the batch, not the input, so that filter after filter does not keep
/// lowering a batch most of whose records are gone.
pub fn output_records(input: &Records, beside: Option<&IndexesBeside>, passed: &[wit::Passed], returned: Batch) -> Records {
    if passed.is_empty() {
        return Records::from(returned);
    }
    let base = input.base();
    let mut output = match beside {
        Some(beside) if passed.len() * 2 >= base.events.len() => whole_input_with(base, beside, passed),
        // Few records passed: copied without the indexes built beside (the next operator that
        // wants them builds them).
        _ => {
            let selection = Records::selection(Arc::clone(input.base_shared()), entries(input.events(), passed));
            if returned.is_empty() {
                return selection;
            }
            selection.into_batch()
        }
    };
    for record in returned.iter() {
        output.push_record_to(record.port(), record);
    }
    Records::from(output)
}

/// The entries of the records `passed` names among `events`, on the ports it names.
fn entries(events: &[Event], passed: &[wit::Passed]) -> Vec<Event> {
    passed.iter().map(|record| Event { port: record.port, ..events[record.index as usize] }).collect()
}

/// Most of the input is passed on, and the runtime built its field indexes beside it for the
/// call: its bytes and the indexes' in one copy, with the passed records' entries. The records
/// not passed keep their bytes in the batch, unreferenced, which costs less than copying the
/// others one by one.
fn whole_input_with(base: &Batch, beside: &IndexesBeside, passed: &[wit::Passed]) -> Batch {
    let mut bytes = Vec::with_capacity(base.bytes.len() + beside.bytes.len());
    bytes.extend_from_slice(&base.bytes);
    bytes.extend_from_slice(&beside.bytes);
    Batch { bytes, events: entries(&beside.events, passed), headers: base.headers.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::convert::field_indexes_beside;
    use crate::wasm::records::{copy_each, copy_whole};

    /// What a record holds, index text included, to compare batches laid out differently.
    type Contents = (u32, Option<Vec<u8>>, Vec<u8>, i64, Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>);

    fn contents(batch: &Batch) -> Vec<Contents> {
        batch
            .iter()
            .map(|record| {
                let headers = record.headers().map(|(name, value)| (name.to_vec(), value.to_vec())).collect();
                let index = record.field_index().map(|index| index.fields().map(|field| (field.name, field.value)).collect::<Vec<_>>());
                let index = index.map(|fields| format!("{fields:?}").into_bytes());
                (record.port(), record.key().map(<[u8]>::to_vec), record.value().to_vec(), record.timestamp(), headers, index)
            })
            .collect()
    }

    fn input(indexed: bool) -> Batch {
        let mut batch = Batch::new();
        for n in 0..6 {
            let value = format!("{{\"n\":{n},\"text\":\"{}\"}}", "x".repeat(n));
            let key = format!("k{n}");
            let headers = if n % 2 == 0 { vec![(&b"h"[..], key.as_bytes())] } else { Vec::new() };
            batch.push((n != 3).then_some(key.as_bytes()), value.as_bytes(), n as i64, headers);
        }
        if indexed {
            sluice_sdk::fields::index_batch(&mut batch);
        }
        batch
    }

    fn passed(pairs: &[(u32, u32)]) -> Vec<wit::Passed> {
        pairs.iter().map(|&(index, port)| wit::Passed { index, port }).collect()
    }

    /// The whole input copied once and the passed records copied one by one give the same
    /// records (the copy one by one leaves out indexes built beside the batch for the call).
    #[test]
    fn passing_most_or_few_records_gives_the_same_records() {
        for selection in [passed(&[(0, 0), (5, 1), (2, 0), (2, 0)]), passed(&[]), passed(&[(3, 0)])] {
            let indexed = input(true);
            let indexed_entries = entries(&indexed.events, &selection);
            let indexed_whole = copy_whole(&indexed, &indexed_entries);
            assert_eq!(contents(&indexed_whole), contents(&copy_each(&indexed, &indexed_entries)));
            let plain = input(false);
            let beside = field_indexes_beside(&plain);
            let whole = whole_input_with(&plain, &beside, &selection);
            assert_eq!(contents(&whole), contents(&indexed_whole), "indexes built beside are kept");
            assert_eq!(whole.check(), Ok(()));
            let without_indexes = |batch: &Batch| contents(batch).into_iter().map(|record| (record.0, record.2)).collect::<Vec<_>>();
            assert_eq!(without_indexes(&whole), without_indexes(&copy_each(&plain, &entries(&plain.events, &selection))));
        }
    }

    /// Passed records come before the records returned, in order; an output without passed
    /// records is what was returned.
    #[test]
    fn passed_records_come_before_the_returned_ones() {
        let input = Records::from(input(true));
        let mut returned = Batch::new();
        returned.push(None, b"{\"new\":1}", 9, []);
        let output = output_records(&input, None, &passed(&[(4, 0), (1, 0)]), returned.clone());
        let values: Vec<Vec<u8>> = output.iter().map(|record| record.value().to_vec()).collect();
        let value = |index: usize| input.get(index).unwrap().value().to_vec();
        assert_eq!(values, vec![value(4), value(1), b"{\"new\":1}".to_vec()]);
        assert_eq!(output_records(&input, None, &[], returned.clone()).into_batch(), returned);
    }

    /// Most of the input passed on and nothing returned: the output shares the input's batch,
    /// also when the input is itself a selection, and holds the records a copy would.
    #[test]
    fn most_of_the_input_passed_on_alone_is_a_selection_of_it_not_a_copy() {
        let input = Records::from(input(true));
        let first = passed(&[(5, 0), (0, 1), (2, 0), (3, 0)]);
        let output = output_records(&input, None, &first, Batch::new());
        assert!(matches!(&output, Records::Selected { .. }) && Arc::ptr_eq(output.base_shared(), input.base_shared()));
        assert_eq!(contents(&output.clone().into_batch()), contents(&copy_whole(input.base(), &entries(input.events(), &first))));
        // A selection of the selection: positions are the selection's.
        let again = output_records(&output, None, &passed(&[(3, 0), (1, 2), (0, 0)]), Batch::new());
        assert!(Arc::ptr_eq(again.base_shared(), input.base_shared()));
        let values: Vec<Vec<u8>> = again.iter().map(|record| record.value().to_vec()).collect();
        let value = |index: usize| input.get(index).unwrap().value().to_vec();
        assert_eq!(values, vec![value(3), value(0), value(5)]);
        assert_eq!(again.iter().map(|record| record.port()).collect::<Vec<_>>(), vec![0, 2, 0]);
        // Fewer than half of the shared batch's records: copied.
        let fewer = output_records(&output, None, &passed(&[(3, 0), (1, 2)]), Batch::new());
        assert!(matches!(&fewer, Records::Whole(_)));
        assert_eq!(fewer.iter().map(|record| record.value().to_vec()).collect::<Vec<_>>(), vec![value(3), value(0)]);
        // Records returned too, few passed, or indexes built beside for the call: a batch.
        let mut returned = Batch::new();
        returned.push(None, b"{}", 9, []);
        assert!(matches!(output_records(&input, None, &first, returned), Records::Whole(_)));
        assert!(matches!(output_records(&input, None, &passed(&[(1, 0)]), Batch::new()), Records::Whole(_)));
        let plain = Records::from(super::tests::input(false));
        let beside = field_indexes_beside(plain.base());
        assert!(matches!(output_records(&plain, Some(&beside), &first, Batch::new()), Records::Whole(_)));
    }

    #[test]
    fn passed_records_outside_the_batch_or_the_outputs_are_refused() {
        assert_eq!(check_passed(&passed(&[(0, 0), (5, 2)]), 6, 2, &[]), Ok(()));
        assert_eq!(
            check_passed(&passed(&[(0, 0), (6, 0)]), 6, 2, &[]),
            Err("passed record 1 is input record 6, but the batch it was given has 6 record(s)".into())
        );
        assert_eq!(
            check_passed(&passed(&[(1, 3)]), 6, 2, &[]),
            Err("passed record 0 goes to output 3, but the plugin declared 2 side output(s)".into())
        );
        let rejected = [(4, "refused".to_owned())];
        assert_eq!(check_passed(&passed(&[(3, 0), (5, 1)]), 6, 2, &rejected), Ok(()));
        assert_eq!(
            check_passed(&passed(&[(3, 0), (4, 1)]), 6, 2, &rejected),
            Err("input record 4 is both rejected and passed on (passed record 1): a record is refused or kept, not both".into())
        );
        // Each of 2 records to each of 2 outputs, or as many in all: fine; one more is not.
        assert_eq!(check_passed(&passed(&[(0, 0), (0, 0), (0, 0), (1, 1)]), 2, 1, &[]), Ok(()));
        assert_eq!(
            check_passed(&passed(&[(0, 0), (0, 0), (0, 0), (0, 0), (1, 1)]), 2, 1, &[]),
            Err("it passes 5 records on, more than its 2 input record(s) times its 2 output(s)".into())
        );
    }
}
