//! A batch crossing the sandbox boundary: its records lowered into a plugin's memory and lifted
//! back in one pass per list, where wasmtime's generated code stores and loads every field of
//! every record on its own (that was a sixth of a Nexmark query's time).
//!
//! The list types here claim exactly what the generated `list<event>` claims: their ABI and
//! their type check are the generated type's, so wasmtime still checks every call against the
//! component, and lifting checks bounds, alignment and option tags as wasmtime does.

use std::mem::MaybeUninit;

use sluice_sdk::{Batch, Event, Header, Span};
use wasmtime::ValRaw;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext, LowerContext};
use wasmtime::component::{ComponentType, Lift, Lower};
use wasmtime::{bail, format_err};

use super::bindings::wit;
use super::convert::IndexesBeside;

/// Where each field of a WIT `event` lies in its canonical-ABI bytes (a test checks this
/// against wasmtime's own layout).
mod layout {
    pub const SIZE: usize = 56;
    pub const ALIGN: u32 = 8;
    /// `option<span>`: a tag byte, then the span at +4.
    pub const KEY: usize = 0;
    pub const VALUE: usize = 12;
    pub const TIMESTAMP: usize = 24;
    pub const FIRST_HEADER: usize = 32;
    pub const HEADER_COUNT: usize = 36;
    pub const PORT: usize = 40;
    pub const FIELDS: usize = 44;
}

/// `Lower` for a list argument with a `store` method, which allocates the list in the plugin's
/// memory and writes it there, returning (pointer, length): the list is passed as those two.
macro_rules! lower_by_store {
    ($list:ty) => {
        unsafe impl Lower for $list {
            fn linear_lower_to_flat<T>(
                &self,
                cx: &mut LowerContext<'_, T>,
                _ty: InterfaceType,
                dst: &mut MaybeUninit<[ValRaw; 2]>,
            ) -> wasmtime::Result<()> {
                let (pointer, length) = self.store(cx)?;
                dst.write([ValRaw::i64(pointer as i64), ValRaw::i64(length as i64)]);
                Ok(())
            }

            fn linear_lower_to_memory<T>(&self, cx: &mut LowerContext<'_, T>, _ty: InterfaceType, offset: usize) -> wasmtime::Result<()> {
                let (pointer, length) = self.store(cx)?;
                *cx.get::<4>(offset) = u32::try_from(pointer)?.to_le_bytes();
                *cx.get::<4>(offset + 4) = u32::try_from(length)?.to_le_bytes();
                Ok(())
            }
        }
    };
}

/// `Lift` for a list result with a `load` function, which reads the list at (pointer, length)
/// out of the plugin's memory: the list comes as those two, flat or stored.
macro_rules! lift_by_load {
    ($list:ty) => {
        unsafe impl Lift for $list {
            fn linear_lift_from_flat(cx: &mut LiftContext<'_>, _ty: InterfaceType, src: &[ValRaw; 2]) -> wasmtime::Result<$list> {
                <$list>::load(cx, src[0].get_u32(), src[1].get_u32())
            }

            fn linear_lift_from_memory(cx: &mut LiftContext<'_>, _ty: InterfaceType, bytes: &[u8]) -> wasmtime::Result<$list> {
                let word = |at: usize| bytes.get(at..at + 4).and_then(|word| word.try_into().ok()).map(u32::from_le_bytes);
                match (word(0), word(4)) {
                    (Some(pointer), Some(length)) => <$list>::load(cx, pointer, length),
                    _ => bail!("pointer out of bounds of memory"),
                }
            }
        }
    };
}

/// `size` bytes aligned to `align` allocated in the plugin's memory (by its `realloc`): their
/// address, and the bytes, bounds-checked.
fn allocate<'m, T>(cx: &'m mut LowerContext<'_, T>, align: u32, size: usize) -> wasmtime::Result<(usize, &'m mut [u8])> {
    let pointer = cx.realloc(0, 0, align, size)?;
    let memory = cx
        .as_slice_mut()
        .get_mut(pointer..)
        .and_then(|memory| memory.get_mut(..size))
        .ok_or_else(|| format_err!("realloc return: beyond end of memory"))?;
    Ok((pointer, memory))
}

/// `process`'s batch argument, lowered from the runtime's batch without copying it first.
#[derive(ComponentType, Lower)]
#[component(record)]
pub struct BatchArgument<'a> {
    bytes: BytesArgument<'a>,
    events: EventsArgument<'a>,
    headers: Vec<wit::Header>,
}

impl<'a> BatchArgument<'a> {
    /// The records `events` describe in `batch` (all of its records, or a selection of them),
    /// with their field indexes or without.
    pub fn of_records(batch: &'a Batch, events: &'a [Event], with_fields: bool) -> BatchArgument<'a> {
        BatchArgument::lowered(batch, events, &[], with_fields)
    }

    /// The batch with the field indexes built beside it: its bytes followed by theirs.
    pub fn indexed(batch: &'a Batch, indexes: &'a IndexesBeside) -> BatchArgument<'a> {
        BatchArgument::lowered(batch, &indexes.events, &indexes.bytes, true)
    }

    fn lowered(batch: &'a Batch, events: &'a [Event], more_bytes: &'a [u8], with_fields: bool) -> BatchArgument<'a> {
        BatchArgument {
            bytes: BytesArgument { parts: [&batch.bytes, more_bytes] },
            events: EventsArgument { events, with_fields },
            headers: batch
                .headers
                .iter()
                .map(|header| wit::Header { name: span_to_wit(header.name), value: span_to_wit(header.value) })
                .collect(),
        }
    }
}

/// `list<u8>`, stored from two slices one after the other (a batch's bytes, then the field
/// indexes built beside it).
pub struct BytesArgument<'a> {
    parts: [&'a [u8]; 2],
}

/// A batch returned by a plugin (`output.batch`, and `on-watermark`'s result).
#[derive(ComponentType, Lift)]
#[component(record)]
pub struct BatchResult {
    bytes: BytesResult,
    events: EventsResult,
    headers: Vec<wit::Header>,
}

impl BatchResult {
    /// The runtime's batch, with the records' field indexes or without.
    pub fn into_batch(self, with_fields: bool) -> Batch {
        let mut events = self.events.0;
        if !with_fields {
            events.iter_mut().for_each(|event| event.fields = None);
        }
        let headers = self
            .headers
            .into_iter()
            .map(|header| Header { name: span_from_wit(header.name), value: span_from_wit(header.value) })
            .collect();
        Batch { bytes: self.bytes.0, events, headers }
    }
}

/// What `process` returns.
#[derive(ComponentType, Lift)]
#[component(record)]
pub struct OutputResult {
    pub batch: BatchResult,
    pub rejected: Vec<wit::Rejection>,
    pub passed: Vec<wit::Passed>,
}

/// `list<event>`, stored from the runtime's events in one pass.
pub struct EventsArgument<'a> {
    events: &'a [Event],
    with_fields: bool,
}

/// `list<event>`, loaded into the runtime's events in one pass.
pub struct EventsResult(Vec<Event>);

/// `list<u8>`, copied out of the plugin's memory in one `memcpy` (wasmtime's own lift of
/// `Vec<u8>` goes byte by byte: 4–5 % of a Nexmark q0 run).
pub struct BytesResult(Vec<u8>);

// SAFETY: the ABI, flat representation and type check are those of `[wit::Event]`, the type
// wasmtime's bindings generate for `list<event>`; the values are written and read through
// bounds-checked slices of the plugin's memory.
unsafe impl ComponentType for EventsArgument<'_> {
    type Lower = <[wit::Event] as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <[wit::Event] as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[wit::Event] as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: the ABI, flat representation and type check are those of `[u8]`, the type
// wasmtime's bindings take for `list<u8>`; the bytes are written through a bounds-checked
// slice of the plugin's memory.
unsafe impl ComponentType for BytesArgument<'_> {
    type Lower = <[u8] as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <[u8] as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[u8] as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: as for `ComponentType` above.
lower_by_store!(BytesArgument<'_>);

impl BytesArgument<'_> {
    /// Allocates the list in the plugin's memory and copies the parts: (pointer, length).
    fn store<T>(&self, cx: &mut LowerContext<'_, T>) -> wasmtime::Result<(usize, usize)> {
        let [first, second] = self.parts;
        let size = first.len().checked_add(second.len()).ok_or_else(|| format_err!("size overflow copying a list"))?;
        let (pointer, memory) = allocate(cx, 1, size)?;
        let (to_first, to_second) = memory.split_at_mut(first.len());
        to_first.copy_from_slice(first);
        to_second.copy_from_slice(second);
        Ok((pointer, size))
    }
}

// SAFETY: as for `ComponentType` above.
lower_by_store!(EventsArgument<'_>);

impl EventsArgument<'_> {
    /// Allocates the list in the plugin's memory and writes every event: (pointer, length).
    fn store<T>(&self, cx: &mut LowerContext<'_, T>) -> wasmtime::Result<(usize, usize)> {
        let size = self.events.len().checked_mul(layout::SIZE).ok_or_else(|| format_err!("size overflow copying a list"))?;
        let (pointer, memory) = allocate(cx, layout::ALIGN, size)?;
        for (slot, event) in memory.chunks_exact_mut(layout::SIZE).zip(self.events) {
            slot.copy_from_slice(&event_bytes(event, self.with_fields));
        }
        Ok((pointer, self.events.len()))
    }
}

// SAFETY: as for `EventsArgument`.
unsafe impl ComponentType for EventsResult {
    type Lower = <[wit::Event] as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <[wit::Event] as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[wit::Event] as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: as for `EventsArgument`.
lift_by_load!(EventsResult);

impl EventsResult {
    /// Reads `length` events at `pointer`, refusing what wasmtime refuses: a list outside
    /// memory or misaligned, an option tag other than 0 or 1.
    fn load(cx: &mut LiftContext<'_>, pointer: u32, length: u32) -> wasmtime::Result<EventsResult> {
        let (pointer, length) = (usize::try_from(pointer)?, usize::try_from(length)?);
        let bytes = length
            .checked_mul(layout::SIZE)
            .and_then(|size| cx.memory().get(pointer..)?.get(..size))
            .ok_or_else(|| format_err!("list pointer/length out of bounds of memory"))?;
        if pointer % layout::ALIGN as usize != 0 {
            bail!("list pointer is not aligned");
        }
        cx.consume_fuel_array(length, std::mem::size_of::<Event>())?;
        // Filled into its full capacity (collecting `Result`s grows a vector push by push).
        let mut events = Vec::with_capacity(length);
        for event in bytes.chunks_exact(layout::SIZE) {
            events.push(event_from_bytes(event)?);
        }
        Ok(EventsResult(events))
    }
}

// SAFETY: as for `BytesArgument`.
unsafe impl ComponentType for BytesResult {
    type Lower = <[u8] as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <[u8] as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[u8] as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: as for `BytesArgument`.
lift_by_load!(BytesResult);

impl BytesResult {
    /// Copies the `length` bytes at `pointer`, refusing a list outside memory as wasmtime does.
    fn load(cx: &mut LiftContext<'_>, pointer: u32, length: u32) -> wasmtime::Result<BytesResult> {
        let (pointer, length) = (usize::try_from(pointer)?, usize::try_from(length)?);
        if pointer.checked_add(length).is_none_or(|end| end > cx.memory().len()) {
            bail!("list pointer/length out of bounds of memory");
        }
        cx.consume_fuel_array(length, 1)?;
        Ok(BytesResult(cx.memory()[pointer..pointer + length].to_vec()))
    }
}

/// An event's canonical-ABI bytes (a `None` option's payload is written as zeros).
fn event_bytes(event: &Event, with_fields: bool) -> [u8; layout::SIZE] {
    let mut bytes = [0; layout::SIZE];
    put_option_span(&mut bytes, layout::KEY, event.key);
    put_span(&mut bytes, layout::VALUE, event.value);
    bytes[layout::TIMESTAMP..layout::TIMESTAMP + 8].copy_from_slice(&event.timestamp.to_le_bytes());
    put_u32(&mut bytes, layout::FIRST_HEADER, event.first_header);
    put_u32(&mut bytes, layout::HEADER_COUNT, event.header_count);
    put_u32(&mut bytes, layout::PORT, event.port);
    put_option_span(&mut bytes, layout::FIELDS, if with_fields { event.fields } else { None });
    bytes
}

fn event_from_bytes(bytes: &[u8]) -> wasmtime::Result<Event> {
    Ok(Event {
        key: option_span_at(bytes, layout::KEY)?,
        value: span_at(bytes, layout::VALUE),
        timestamp: i64::from_le_bytes(array_at(bytes, layout::TIMESTAMP)),
        first_header: u32_at(bytes, layout::FIRST_HEADER),
        header_count: u32_at(bytes, layout::HEADER_COUNT),
        port: u32_at(bytes, layout::PORT),
        fields: option_span_at(bytes, layout::FIELDS)?,
    })
}

fn put_u32(bytes: &mut [u8; layout::SIZE], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_span(bytes: &mut [u8; layout::SIZE], at: usize, span: Span) {
    put_u32(bytes, at, span.offset);
    put_u32(bytes, at + 4, span.length);
}

fn put_option_span(bytes: &mut [u8; layout::SIZE], at: usize, span: Option<Span>) {
    if let Some(span) = span {
        bytes[at] = 1;
        put_span(bytes, at + 4, span);
    }
}

/// `N` bytes at `at` of an event's bytes (always within them: the offsets are the layout's).
fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes.get(at..at + N).and_then(|slice| slice.try_into().ok()).unwrap_or([0; N])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array_at(bytes, at))
}

fn span_at(bytes: &[u8], at: usize) -> Span {
    Span { offset: u32_at(bytes, at), length: u32_at(bytes, at + 4) }
}

fn option_span_at(bytes: &[u8], at: usize) -> wasmtime::Result<Option<Span>> {
    match bytes[at] {
        0 => Ok(None),
        1 => Ok(Some(span_at(bytes, at + 4))),
        _ => bail!("invalid option discriminant"),
    }
}

fn span_to_wit(span: Span) -> wit::Span {
    wit::Span { offset: span.offset, length: span.length }
}

fn span_from_wit(span: wit::Span) -> Span {
    Span { offset: span.offset, length: span.length }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout above is the one wasmtime computes for the WIT `event` record.
    #[test]
    fn the_event_layout_is_the_canonical_abi_one() {
        type Fields = (Option<wit::Span>, wit::Span, i64, u32, u32, u32, Option<wit::Span>);
        assert_eq!(<wit::Event as ComponentType>::SIZE32, layout::SIZE);
        assert_eq!(<wit::Event as ComponentType>::ALIGN32, layout::ALIGN);
        let abis = [
            <Option<wit::Span> as ComponentType>::ABI,
            <wit::Span as ComponentType>::ABI,
            <i64 as ComponentType>::ABI,
            <u32 as ComponentType>::ABI,
            <u32 as ComponentType>::ABI,
            <u32 as ComponentType>::ABI,
            <Option<wit::Span> as ComponentType>::ABI,
        ];
        let mut offset = 0;
        let offsets: Vec<usize> = abis.iter().map(|abi| abi.next_field32_size(&mut offset)).collect();
        let expected =
            [layout::KEY, layout::VALUE, layout::TIMESTAMP, layout::FIRST_HEADER, layout::HEADER_COUNT, layout::PORT, layout::FIELDS];
        assert_eq!(offsets, expected);
        assert_eq!(<Fields as ComponentType>::SIZE32, layout::SIZE);
        assert_eq!(<Option<wit::Span> as ComponentType>::SIZE32, 12, "an option's span lies at +4");
    }

    #[test]
    fn events_come_back_as_they_were_written() {
        let events = [
            Event {
                key: None,
                value: Span { offset: 0, length: 5 },
                timestamp: -7,
                first_header: 0,
                header_count: 0,
                port: 0,
                fields: None,
            },
            Event {
                key: Some(Span { offset: 5, length: 2 }),
                value: Span { offset: 7, length: u32::MAX },
                timestamp: i64::MIN,
                first_header: 3,
                header_count: 9,
                port: 2,
                fields: Some(Span { offset: 40, length: 12 }),
            },
        ];
        for event in events {
            assert_eq!(event_from_bytes(&event_bytes(&event, true)).unwrap(), event);
            assert_eq!(event_from_bytes(&event_bytes(&event, false)).unwrap(), Event { fields: None, ..event });
        }
        let mut bytes = event_bytes(&events[0], true);
        bytes[layout::FIELDS] = 2;
        assert_eq!(event_from_bytes(&bytes).unwrap_err().to_string(), "invalid option discriminant");
    }
}
