//! The engine's side of child workflows: telling a parent that its child ended, and cancelling
//! a parent's unfinished children with it.

use crate::child::{ChildEnd, ChildNotice, notice_name};
use crate::store::{ExecutionRecord, Notice};

/// The payload that tells a parent its child returned `output` (stored JSON of the child's
/// `Result`).
pub(crate) fn returned(output: &str) -> String {
    format!("{{\"Returned\":{output}}}")
}

/// The payload that tells a parent its child was cancelled.
pub(crate) fn cancelled() -> String {
    // A unit variant: encoding cannot fail.
    serde_json::to_string(&ChildEnd::<()>::Cancelled).unwrap_or_default()
}

/// The notice that tells the parent of `child` (whose record it is) that it ended with `end`,
/// under the event name the parent waits for. Its key makes a second delivery (a commit
/// retried after an unknown outcome) a no-op.
pub(crate) fn ended_notice(child: &ExecutionRecord, end: String) -> Option<Notice> {
    let parent = child.parent.clone()?;
    let key = notice_name(&child.id);
    let name = child.parent_event.clone().unwrap_or_else(|| key.clone());
    let id = serde_json::to_string(&child.id).unwrap_or_default();
    Some(Notice { to: parent, key: Some(key), name, payload: format!("{{\"child\":{id},\"end\":{end}}}") })
}

/// How the history says a child ended, from its notice's payload.
pub(crate) fn ended_words(payload: &str) -> String {
    let end = serde_json::from_str::<ChildNotice<Result<serde_json::Value, serde_json::Value>>>(payload);
    match end.map(|notice| notice.end) {
        Ok(ChildEnd::Returned(Ok(_))) => "succeeded".to_owned(),
        Ok(ChildEnd::Returned(Err(error))) => {
            let error = match error {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            format!("failed: {error}")
        }
        Ok(ChildEnd::Cancelled) => "was cancelled".to_owned(),
        Err(_) => "ended".to_owned(),
    }
}
