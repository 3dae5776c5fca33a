use xl_core::{AlertKind, ErrorKind};

/// Why a rules configuration was refused. `entry` is the 1-based position of the `[[rules]]`
/// table in the file, so an operator can find it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// Two `[[rules]]` tables configure the same kind.
    #[error(
        "[[rules]] entry {second} (kind = \"{kind}\"): kind {kind} is already configured by \
         [[rules]] entry {first}; merge the two tables into one"
    )]
    DuplicateKind {
        kind: AlertKind,
        first: usize,
        second: usize,
    },
    /// A field has a value that cannot work, or does not apply to the rule's kind.
    #[error("[[rules]] entry {entry} (kind = \"{kind}\"): {field} {reason}")]
    InvalidField {
        entry: usize,
        kind: AlertKind,
        field: &'static str,
        reason: String,
    },
}

impl RulesError {
    /// Always [`ErrorKind::InvalidInput`]: the configuration must change.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}
