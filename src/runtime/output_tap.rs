//! The runtime's side of live output: whoever wants a running action's output as it is
//! produced (the conversation's output feed) gives the runtime a tap.

/// Receives a running command's or cell's output as it is produced, before the action
/// ends. What it gets is a preview: the observation stays the action's whole result.
pub trait OutputTap: Send + Sync {
    /// More output of the running action (raw bytes; not necessarily whole characters).
    fn output(&self, bytes: &[u8]);
}
