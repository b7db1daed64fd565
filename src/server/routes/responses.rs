//! Response bodies shared by several resources.

use serde::Serialize;

/// `{"message": …}`: what a settings or secrets change answers.
#[derive(Serialize)]
pub struct Message {
    pub message: &'static str,
}
