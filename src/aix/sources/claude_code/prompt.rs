//! Prompts: which `user` lines are prompts someone typed (they open turns), and the prompt a
//! spawning call sends its subagent, by which a subagent whose call's result never named it
//! is linked to that call (the parent side: [`prompt_link`]; the child side: [`first_prompt`];
//! the link: `aix::lineage`).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::record::{Block, Record};
use crate::aix::sources::common::str_at;
use crate::aix::sources::{SpawnLink, prompt_link_key};

/// Text a `user` line starts with when nobody typed it as a prompt (SOURCES.md "Real-world
/// variants"): shell-mode input and output, local command output, interrupt markers, background
/// task notices (injected context), and the compaction summary that 1.0.x wrote without
/// `isCompactSummary`.
const NOT_PROMPT_PREFIXES: [&str; 8] = [
    "<bash-input>",
    "<bash-stdout>",
    "<bash-stderr>",
    "<local-command-stdout>",
    "<local-command-stderr>",
    "[Request interrupted by user",
    "<task-notification>",
    "This session is being continued from a previous conversation",
];

/// Whether a `user` line that is not a tool result opens a turn: a prompt someone typed. Not
/// prompts: `isMeta` caveats and injected context, `isVisibleInTranscriptOnly` records, and the
/// lines whose text starts with a `NOT_PROMPT_PREFIXES` marker. Slash commands are prompts, and
/// so is a message holding only an image; a line with neither text nor image is not.
pub(super) fn is_prompt(r: &Record<'_>, plain: Option<&str>, blocks: &[Block<'_>]) -> bool {
    if r.is_meta == Some(true) || r.is_visible_in_transcript_only == Some(true) {
        return false;
    }
    let first_text = match plain {
        Some(t) => Some(t.trim_start()).filter(|t| !t.is_empty()),
        None => blocks
            .iter()
            .filter(|b| b.kind() == "text")
            .filter_map(|b| b.text.as_deref().map(str::trim_start))
            .find(|t| !t.is_empty()),
    };
    match first_text {
        Some(t) => is_prompt_text(t),
        None => blocks.iter().any(|b| b.kind() == "image"),
    }
}

/// Whether a text someone sent is a prompt: it has text and starts with no
/// `NOT_PROMPT_PREFIXES` marker.
pub(super) fn is_prompt_text(text: &str) -> bool {
    let t = text.trim_start();
    !t.is_empty() && !NOT_PROMPT_PREFIXES.iter().any(|p| t.starts_with(p))
}

/// A spawning call (`Task`, or `Agent` as 2.1.x names it) by the key of its prompt: a subagent
/// file's first prompt is its call's `input.prompt`, which links a subagent whose call never got
/// the result naming its agent (interrupted, or still running when the file ends).
pub(super) fn prompt_link(block: &Block<'_>, id: &str) -> Option<(String, SpawnLink)> {
    if !matches!(block.name.as_deref(), Some("Task" | "Agent")) {
        return None;
    }
    let input = block.input.as_ref()?;
    let prompt = str_at(input, "prompt").filter(|p| !p.trim().is_empty())?;
    Some((
        prompt_link_key(prompt),
        SpawnLink {
            tool_use_id: id.to_owned(),
            description: str_at(input, "description").map(str::to_owned),
            status: None,
        },
    ))
}

/// The text of a Claude Code subagent file's first prompt: its first `user` line that is not
/// `isMeta`, whose `message.content` is a string or starts with a text block. Reads at most
/// `FIRST_PROMPT_SCAN_BYTES` (1 MiB); `None` when there is no such line there, or the file
/// cannot be read (the subagent then stays unlinked, as before).
pub fn first_prompt(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let reader = BufReader::new(file.take(FIRST_PROMPT_SCAN_BYTES));
    for line in reader.split(b'\n') {
        let line = line.ok()?;
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        if value.get("type").and_then(serde_json::Value::as_str) != Some("user")
            || value.get("isMeta").and_then(serde_json::Value::as_bool) == Some(true)
        {
            continue;
        }
        let content = value.get("message")?.get("content")?;
        return match content {
            serde_json::Value::String(text) => Some(text.clone()),
            serde_json::Value::Array(blocks) => blocks
                .first()
                .filter(|b| b.get("type").and_then(serde_json::Value::as_str) == Some("text"))
                .and_then(|b| b.get("text")?.as_str())
                .map(str::to_owned),
            _ => None,
        };
    }
    None
}

/// How far [`first_prompt`] reads into a file.
const FIRST_PROMPT_SCAN_BYTES: u64 = 1 << 20;
