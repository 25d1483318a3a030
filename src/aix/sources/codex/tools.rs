//! Tool calls of a Codex rollout: every `*_call` response item (`function_call`,
//! `custom_tool_call`, `local_shell_call`, `web_search_call`, MCP and future kinds) joined to its
//! output item by `call_id` (`*_call_output`, and `tool_search_output` for `tool_search_call`,
//! whose result is the `tools` it found); the calls that spawn agents are linked in `agents.rs`.
//!
//! A joined call failed when its output says so: `success: false`, `status: "failed"`, or a
//! command's exit code other than 0 ([`exit_code`]), as a Claude Code command that exits non-zero
//! is an error result.

use serde_json::Value;

use super::CodexParser;
use super::content::{json_or_string, line_id};
use super::record::Payload;
use crate::aix::sources::assembler::{STATUS_COMPLETED, STATUS_FAILED, STATUS_PENDING};
use crate::aix::sources::common::{Line, count_skip, later};
use crate::protocol::{ToolCall, ToolJson};

/// Call kinds whose result arrives as a separate `*_output` item; other kinds carry their own
/// `status` (a web search is done when it is written).
const JOINED_KINDS: [&str; 3] = ["function_call", "custom_tool_call", "local_shell_call"];

impl CodexParser {
    pub(super) fn tool_call(
        &mut self,
        line: &Line<'_>,
        p: &mut Payload<'_>,
        kind: &str,
        ts: Option<i64>,
    ) {
        // A call without an id (`web_search_call`) is named by its line.
        let call_id = p
            .call_id
            .as_deref()
            .or(p.id.as_deref())
            .map_or_else(|| line_id(line), str::to_owned);
        let (name, params) = match kind {
            "function_call" => (p.name.as_deref(), p.arguments.take()),
            "custom_tool_call" => (p.name.as_deref(), p.input.take()),
            "local_shell_call" => (Some("local_shell"), p.action.take()),
            _ => (
                p.name.as_deref().or(kind.strip_suffix("_call")),
                p.arguments.take().or(p.input.take()).or(p.action.take()),
            ),
        };
        let status = if JOINED_KINDS.contains(&kind) {
            STATUS_PENDING
        } else if p.status.as_deref() == Some("failed") {
            STATUS_FAILED
        } else {
            STATUS_COMPLETED
        };
        let name = name.unwrap_or("unknown").to_owned();
        self.ensure_turn(line, ts);
        let turn_id = self.asm.open_ref().map(|t| t.turn.source_turn_id.clone());
        let call = ToolCall {
            source_tool_call_id: call_id,
            source_turn_id: turn_id,
            tool_name: name,
            params_json: params.map(json_or_string).map(ToolJson::from),
            status: Some(status.to_owned()),
            started_at_ms: ts.unwrap_or(0),
            completed_at_ms: (status != STATUS_PENDING).then_some(ts).flatten(),
            sequence: line.index as i64,
            ..ToolCall::default()
        };
        if self.asm.add_tool(call)
            && let Some(t) = self.asm.open_mut()
        {
            t.extra.has_output = true;
            later(&mut t.turn.completed_at_ms, ts);
        } else {
            count_skip(&mut self.stats, "duplicate_call");
        }
    }

    /// A `*_output` item: the result of the call its `call_id` names (`output`, or the
    /// `tools` a `tool_search_output` found).
    pub(super) fn tool_output(&mut self, p: &mut Payload<'_>, ts: Option<i64>) {
        let Some(call_id) = p.call_id.as_deref() else {
            return;
        };
        let output = p.output.take().or(p.tools.take()).unwrap_or(Value::Null);
        let failed = output.get("success").and_then(Value::as_bool) == Some(false)
            || p.status.as_deref() == Some("failed")
            || exit_code(&output).is_some_and(|code| code != 0);
        self.spawn_output(call_id, &output);
        let Some(call) = self.asm.tool_mut(call_id) else {
            return;
        };
        call.result_json = Some(output.into());
        call.status = Some(
            if failed {
                STATUS_FAILED
            } else {
                STATUS_COMPLETED
            }
            .to_owned(),
        );
        call.completed_at_ms = ts;
        self.touch_completion(ts);
    }
}

/// The exit code a command's output reports, in the three forms Codex writes it: a JSON text
/// `{"output", "metadata": {"exit_code", "duration_seconds"}}` (0.3x-0.5x), or a text whose
/// header, the lines before `Output:`, holds `Exit code: N` (the shell tool, 0.8x on) or
/// `Process exited with code N` (`exec_command`, after `Chunk ID` and `Wall time`).
fn exit_code(output: &Value) -> Option<i64> {
    let text = output.as_str()?;
    if text.starts_with('{') {
        #[derive(serde::Deserialize)]
        struct Reported {
            metadata: Option<Metadata>,
        }
        #[derive(serde::Deserialize)]
        struct Metadata {
            exit_code: Option<i64>,
        }
        let reported: Reported = serde_json::from_str(text).ok()?;
        return reported.metadata?.exit_code;
    }
    text.lines()
        .take(HEADER_LINES)
        .take_while(|line| *line != "Output:")
        .find_map(|line| {
            line.strip_prefix("Exit code: ")
                .or_else(|| line.strip_prefix("Process exited with code "))
        })
        .and_then(|code| code.trim().parse().ok())
}

/// The most lines a command output's header has (`Chunk ID`, `Wall time`, `Process exited with
/// code`, `Original token count`, then `Output:`).
const HEADER_LINES: usize = 6;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_exit_code_of_each_output_form_and_none_where_there_is_none() {
        let cases = [
            (
                json!(r#"{"output":"x","metadata":{"exit_code":1,"duration_seconds":0.1}}"#),
                Some(1),
            ),
            (
                json!(r#"{"output":"x","metadata":{"exit_code":0}}"#),
                Some(0),
            ),
            (json!(r#"{"output":"x"}"#), None),
            (json!(r#"{"not json"#), None),
            (
                json!("Exit code: 2\nWall time: 1.1 seconds\nOutput:\nboom"),
                Some(2),
            ),
            (
                json!(
                    "Chunk ID: 1a2b3c\nWall time: 28.9 seconds\nProcess exited with code 255\nOriginal token count: 842\nOutput:\nx"
                ),
                Some(255),
            ),
            (
                json!("Chunk ID: 1a2b3c\nWall time: 0.5 seconds\nOutput:\nExit code: 3"),
                None,
            ),
            (json!("Plan updated"), None),
            (json!("Exit code: many"), None),
            (json!({"content": "x", "success": true}), None),
            (Value::Null, None),
        ];
        for (output, code) in cases {
            assert_eq!(exit_code(&output), code, "{output}");
        }
    }
}
