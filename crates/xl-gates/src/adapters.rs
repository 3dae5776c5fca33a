//! The firmware adapters by name: the built-in ones and the configured generic dialects.

use std::collections::HashMap;
use std::sync::Arc;

use xl_core::FirmwareAdapter;
use xl_fw_generic::{GenericAdapter, GenericConfig};

/// Names of the built-in adapters, as config and `gate-decode --firmware` spell them.
pub const BUILT_IN: [&str; 6] = [
    xl_fw_hikvision::NAME,
    xl_fw_dahua::NAME,
    xl_fw_zkteco::NAME,
    xl_fw_esp_rfid::NAME,
    xl_fw_zigbee2mqtt::NAME,
    xl_fw_esphome::NAME,
];

/// The built-in adapter called `name`.
pub fn built_in(name: &str) -> Option<Arc<dyn FirmwareAdapter>> {
    let a: Arc<dyn FirmwareAdapter> = match name {
        xl_fw_hikvision::NAME => Arc::new(xl_fw_hikvision::HikvisionIsapi),
        xl_fw_dahua::NAME => Arc::new(xl_fw_dahua::Dahua),
        xl_fw_zkteco::NAME => Arc::new(xl_fw_zkteco::ZktecoAdms),
        xl_fw_esp_rfid::NAME => Arc::new(xl_fw_esp_rfid::EspRfid),
        xl_fw_zigbee2mqtt::NAME => Arc::new(xl_fw_zigbee2mqtt::Zigbee2Mqtt),
        xl_fw_esphome::NAME => Arc::new(xl_fw_esphome::Esphome),
        _ => return None,
    };
    Some(a)
}

/// Every adapter the config can name.
#[derive(Clone)]
pub struct Adapters {
    by_name: HashMap<String, Arc<dyn FirmwareAdapter>>,
}

impl Adapters {
    /// The built-in adapters plus one per generic dialect (named by its `name`).
    pub fn new(generic: &[GenericConfig]) -> Result<Adapters, String> {
        let mut by_name: HashMap<String, Arc<dyn FirmwareAdapter>> = BUILT_IN
            .iter()
            .filter_map(|n| Some(((*n).to_owned(), built_in(n)?)))
            .collect();
        for g in generic {
            let a = GenericAdapter::new(g.clone()).map_err(|e| e.to_string())?;
            by_name.insert(g.name.clone(), Arc::new(a));
        }
        Ok(Adapters { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn FirmwareAdapter>> {
        self.by_name.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_name_resolves_to_itself() {
        for n in BUILT_IN {
            assert_eq!(built_in(n).unwrap().name(), n);
        }
        assert!(built_in("nope").is_none());
    }
}
