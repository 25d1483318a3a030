//! Prompts the user typed while the agent worked, as Claude Code 2.x logs its input queue:
//! `queue-operation` lines (`operation`: `enqueue` with the text as `content`, `dequeue`,
//! `remove`, `popAll`), which carry no uuid.
//!
//! - `enqueue` puts a text at the back of the queue: a prompt, or a background task's
//!   `<task-notification>` waiting for the turn's end. `dequeue` takes the front one, which the
//!   session then logs as an ordinary `user` line.
//! - `remove` takes the first prompt of the queue (notices stay queued) and hands it to the
//!   agent mid-turn. 2.1.81 to 2.1.87 log it nowhere else (the agent answers it; a later
//!   compaction summary may quote it): the `remove` stands for the `user` line of that prompt
//!   (named `queue-<hash>`, see [`prompt_line`]), which opens its turn as a prompt does. Later
//!   builds also write a `queued_command` attachment with the same text right after it: the
//!   same prompt, which the attachment does not open a second time
//!   ([`PromptQueue::is_delivered`]).
//! - `popAll` takes the queue's prompts back into the input box to be edited (its `content` is
//!   their text); they were not sent, and the notices stay queued.
//!
//! Seen in real 2.1.81 logs: notices enqueued before a prompt are dequeued as `user` lines
//! after the `remove` that delivered the prompt, and a `popAll`'s content is the one prompt
//! queued since, not the notices.

use std::borrow::Cow;
use std::collections::VecDeque;

use sha2::{Digest, Sha256};

use super::prompt::is_prompt_text;
use super::record::{MessageBody, Record};
use crate::aix::sources::common::hex32;
use crate::aix::sources::lenient::{Obj, TextOrList};

/// The input queue of one item, rebuilt from its lines (every cut of a file replays them).
#[derive(Debug, Default)]
pub(super) struct PromptQueue {
    pending: VecDeque<String>,
    /// The turn a `remove` opened, with its text.
    delivered: Option<(String, String)>,
}

impl PromptQueue {
    /// Applies one `queue-operation` line; returns the text a `remove` hands to the agent.
    pub fn apply(&mut self, r: &Record<'_>) -> Option<String> {
        match r.operation.as_deref() {
            Some("enqueue") => {
                if let Some(text) = r.content.as_deref().filter(|t| !t.trim().is_empty()) {
                    self.pending.push_back(text.to_owned());
                }
                None
            }
            Some("dequeue") => {
                self.pending.pop_front();
                None
            }
            Some("popAll") => {
                self.pending.retain(|t| !is_prompt_text(t));
                None
            }
            Some("remove") => {
                let first = self.pending.iter().position(|t| is_prompt_text(t))?;
                self.pending.remove(first)
            }
            _ => None,
        }
    }

    /// Records that `turn` holds the prompt `text` a `remove` delivered.
    pub fn deliver(&mut self, turn: String, text: String) {
        self.delivered = Some((turn, text));
    }

    /// Whether a `queued_command` prompt of `text`, met while `open_turn` is open, is the one a
    /// `remove` already delivered to that turn.
    pub fn is_delivered(&self, open_turn: Option<&str>, text: &str) -> bool {
        self.delivered
            .as_ref()
            .is_some_and(|(turn, t)| Some(turn.as_str()) == open_turn && t == text)
    }
}

/// The text of a queued prompt read as its `user` line (`Record::take_queued_prompt`).
pub(super) fn queued_text<'r>(r: &'r Record<'_>) -> Option<&'r str> {
    match &r.message.0.as_ref()?.content {
        TextOrList::Text(t) if r.queued => Some(t),
        _ => None,
    }
}

/// The `user` line a delivered prompt stands for: the `remove` line's session and time, `text`
/// as its content, `parent` (the open turn's id) as its parent, and the uuid
/// `queue-<32 hex of SHA-256 of session id, time and text>`, the same in every read.
pub(super) fn prompt_line<'a>(
    mut r: Record<'a>,
    text: String,
    parent: Option<String>,
) -> Record<'a> {
    let mut h = Sha256::new();
    for part in [
        r.session_id.as_deref().unwrap_or_default(),
        r.timestamp.as_deref().unwrap_or_default(),
        &text,
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    let hex = hex32(&h.finalize());
    r.kind = Some(Cow::Borrowed("user"));
    r.uuid = Some(Cow::Owned(format!("queue-{hex}")));
    r.parent_uuid = parent.map(Cow::Owned);
    r.content = None;
    r.message = Obj(Some(MessageBody {
        content: TextOrList::Text(text),
        ..MessageBody::default()
    }));
    r.queued = true;
    r
}
