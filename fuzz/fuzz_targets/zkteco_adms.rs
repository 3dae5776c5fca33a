//! ZKTeco ADMS: ATTLOG bodies; the first line of the input is the query string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xl_core::gate::PayloadMeta;

fuzz_target!(|data: &[u8]| {
    let received_at = jiff::Timestamp::UNIX_EPOCH;
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (query, body) = data.split_at(split);
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let meta = PayloadMeta::new(received_at)
        .with_path("/iclock/cdata")
        .with_query(query);
    let _ = xl_fw_zkteco::decode(&meta, body.get(1..).unwrap_or_default());
});
