//! A consumed Kafka record's headers, read as bytes: rdkafka's own reader (`Headers::iter`)
//! panics on a header name that is not UTF-8, which any producer may write.

use std::ffi::CStr;
use std::marker::PhantomData;

use rdkafka::bindings::{rd_kafka_header_cnt, rd_kafka_header_get_all, rd_kafka_headers_t, rd_kafka_message_headers, rd_kafka_resp_err_t};
use rdkafka::message::BorrowedMessage;

/// The headers of one message, in order: (name, value) with a null value read as empty.
pub struct MessageHeaders<'a> {
    native: *const rd_kafka_headers_t,
    count: usize,
    next: usize,
    message: PhantomData<&'a BorrowedMessage<'a>>,
}

/// The headers of `message` (none if it has none).
pub fn headers_of<'a>(message: &'a BorrowedMessage<'_>) -> MessageHeaders<'a> {
    let mut native: *mut rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: the message's handle is valid while `message` is borrowed; librdkafka sets
    // `native` to headers the message owns, which live as long as it does.
    let error = unsafe { rd_kafka_message_headers(message.ptr(), &mut native) };
    let count = if error == rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && !native.is_null() {
        // SAFETY: `native` was just set by librdkafka to the message's headers.
        unsafe { rd_kafka_header_cnt(native) }
    } else {
        0
    };
    MessageHeaders { native, count, next: 0, message: PhantomData }
}

impl<'a> Iterator for MessageHeaders<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while self.next < self.count {
            let index = self.next;
            self.next += 1;
            let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0);
            // SAFETY: `native` holds `count` headers and is owned by the borrowed message;
            // librdkafka points `name` at a NUL-terminated string and `value` at `size` bytes
            // (or null), both owned by the headers.
            let error = unsafe { rd_kafka_header_get_all(self.native, index, &mut name, &mut value, &mut size) };
            if error != rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                continue;
            }
            // SAFETY: as above; the bytes live as long as the message, which outlives 'a.
            let name = unsafe { CStr::from_ptr(name) }.to_bytes();
            let value: &[u8] = if value.is_null() || size == 0 {
                &[]
            } else {
                // SAFETY: `value` points at `size` bytes owned by the message's headers.
                unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) }
            };
            return Some((name, value));
        }
        None
    }
}
