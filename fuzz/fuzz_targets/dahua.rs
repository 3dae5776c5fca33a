//! Dahua: eventManager text blocks, DahuaVTO2MQTT JSON, (deflated) JSON uploads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xl_core::gate::PayloadMeta;

fuzz_target!(|data: &[u8]| {
    let received_at = jiff::Timestamp::UNIX_EPOCH;
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let meta = match selector % 2 {
        0 => PayloadMeta::new(received_at),
        _ => PayloadMeta::new(received_at).with_topic("DahuaVTO/AccessControl/Event"),
    };
    let _ = xl_fw_dahua::decode(&meta, payload);
});
