//! Hikvision ISAPI: JSON alerts, AcsEvent records and multipart HTTP-push bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xl_core::gate::PayloadMeta;

fuzz_target!(|data: &[u8]| {
    let received_at = jiff::Timestamp::UNIX_EPOCH;
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let meta = match selector % 3 {
        0 => PayloadMeta::new(received_at),
        1 => PayloadMeta::new(received_at)
            .with_content_type("multipart/form-data; boundary=MIME_boundary"),
        _ => PayloadMeta::new(received_at).with_content_type("multipart/mixed; boundary=boundary"),
    };
    let _ = xl_fw_hikvision::decode(&meta, payload);
});
