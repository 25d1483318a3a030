//! Gemini CLI: the JSONL upsert log (message rewrites, `$set`, `$set.messages`, `$rewindTo`),
//! subagent lineage, state rebuilt without emitting, bad input (logs and documents).

use super::*;
use nex::aix::cursor::FileCursor;
use nex::aix::lineage::Lineage;
use serde_json::json;

pub(super) const GA: &str = "aaaa0001-0000-4000-8000-000000000001";
pub(super) const GB: &str = "bbbb0002-0000-4000-8000-000000000002";
const GC: &str = "cccc0003-0000-4000-8000-000000000003";

const GA_BASE: i64 = 1_775_037_600_000; // 2026-04-01T10:00:00Z
const GB_BASE: i64 = 1_775_120_400_000; // 2026-04-02T09:00:00Z
const GD_BASE: i64 = 1_772_352_000_000; // 2026-03-01T08:00:00Z

fn ga(min: i64, sec: i64) -> i64 {
    GA_BASE + (min * 60 + sec) * 1000
}

fn gb(min: i64, sec: i64) -> i64 {
    GB_BASE + (min * 60 + sec) * 1000
}

pub(super) fn gd(min: i64, sec: i64) -> i64 {
    GD_BASE + (min * 60 + sec) * 1000
}

/// The Gemini fixture files, with the role discovery gives them.
pub(super) fn gemini_fixtures() -> Vec<SourceFile> {
    let main = |rel: &str| {
        source(
            Provider::GeminiCli,
            &format!("gemini/tmp/{rel}"),
            FileRole::Main,
        )
    };
    vec![
        main("proj-a/chats/session-2026-04-01T10-00-aaaa0001.jsonl"),
        gemini_child(),
        main("proj-b/chats/session-2026-04-02T09-00-cccc0003.jsonl"),
    ]
}

fn gemini_child() -> SourceFile {
    source(
        Provider::GeminiCli,
        &format!("gemini/tmp/proj-a/chats/{GA}/{GB}.jsonl"),
        FileRole::Subagent {
            agent_id: s(GB),
            parent_session_id: o(GA),
            meta: None,
        },
    )
}

pub(super) fn document() -> SourceFile {
    source(
        Provider::GeminiCli,
        "gemini/tmp/proj-c/chats/session-2026-03-01T08-00-dddd0004.json",
        FileRole::Main,
    )
}

pub(super) fn one(items: &[ImportSessionItem]) -> &ImportSessionItem {
    assert_eq!(items.len(), 1);
    &items[0]
}

fn meta(item: &ImportSessionItem, id: &str) -> serde_json::Value {
    let m = item.messages.iter().find(|m| m.source_message_id == id);
    m.and_then(|m| m.metadata_json.clone()).unwrap()
}

#[test]
fn gemini_log_session_turns_messages_tools_and_tokens() {
    let (items, p) = parse_all(&gemini_fixtures()[0]);
    let item = one(&items);
    assert_eq!(item.source_provider, "gemini-cli");
    assert_eq!(item.source_session_id, GA);
    assert_eq!(
        serde_json::to_value(&item.session).unwrap(),
        json!({
            "createdAtMs": ga(0, 0), "updatedAtMs": ga(2, 3), "model": "gemini-2.5-flash",
            "provider": "google", "project": "proj-a",
            "metadata": {"projectHash": "ph-a", "kind": "main",
                         "summary": "Read main.go and investigated tests"}
        })
    );
    // g1 was written twice (tool pending, then result and tokens): its tokens count once.
    // The notice before the first prompt is that prompt's turn, named by the notice.
    assert_eq!(
        turns(item),
        vec![
            (
                s("i0"),
                None,
                ga(0, 1),
                Some(ga(0, 10)),
                o("gemini-2.5-pro"),
                [Some(1000), Some(70), Some(1100), None, Some(30), Some(2405)],
                o("g2"),
                vec![s("u1")]
            ),
            (
                s("u2"),
                o("i0"),
                ga(1, 0),
                Some(ga(2, 2)),
                o("gemini-2.5-flash"),
                [Some(2000), Some(10), Some(0), None, Some(0), Some(2010)],
                None,
                vec![s("u2")]
            ),
        ]
    );
    assert_eq!(
        messages(item),
        vec![
            (s("i0"), s("i0"), s("system"), o("Signed in."), None, 0),
            (s("u1"), s("i0"), s("user"), o("Read main.go"), None, 1),
            (
                s("g1"),
                s("i0"),
                s("assistant"),
                o("Reading it."),
                o("Plan\nRead the file."),
                2
            ),
            (
                s("g2"),
                s("i0"),
                s("assistant"),
                o("It is a main package."),
                None,
                3
            ),
            (
                s("u2"),
                s("u2"),
                s("user"),
                o("Investigate the tests with a subagent."),
                None,
                4
            ),
            (s("g3"), s("u2"), s("assistant"), None, None, 5),
            (s("w1"), s("u2"), s("system"), o("Loop detected."), None, 6),
        ]
    );
    assert_eq!(
        meta(item, "u1"),
        json!({"type": "user", "displayContent": "Read @main.go"})
    );
    assert_eq!(
        meta(item, "g1"),
        json!({"type": "gemini", "model": "gemini-2.5-pro"})
    );
    assert_eq!(meta(item, "w1"), json!({"type": "warning"}));
    assert_eq!(
        tools(item),
        vec![
            (
                s("call-read-1"),
                s("i0"),
                o("g1"),
                s("read_file"),
                s("completed"),
                Some(ga(0, 8)),
                None
            ),
            (
                s("call-agent-1"),
                s("u2"),
                o("g3"),
                s("codebase_investigator"),
                s("completed"),
                Some(ga(2, 0)),
                o(GB)
            ),
        ]
    );
    let read = &item.tool_calls[0];
    assert_eq!(
        read.params_json.clone().map(serde_json::Value::from),
        Some(json!({"file_path": "main.go"}))
    );
    assert_eq!(
        read.result_json.clone().map(serde_json::Value::from),
        Some(
            json!([{"functionResponse": {"id": "call-read-1", "name": "read_file",
                                          "response": {"output": "package main"}}}])
        )
    );
    assert_eq!((read.started_at_ms, read.sequence), (ga(0, 7), 0));
    assert_eq!(item.tool_calls[1].sequence, 1);
    assert_eq!(p.stats().lines, 15);
    assert_eq!(p.stats().malformed_lines, 1);
    assert_eq!(
        skipped(p.as_ref()),
        vec![(s("message/compression"), 1), (s("unknown"), 1)]
    );
    assert_eq!(
        p.spawn_links(),
        BTreeMap::from([(
            s(GB),
            nex::aix::sources::SpawnLink {
                tool_use_id: s("call-agent-1"),
                description: o("Investigate tests"),
                status: o("completed"),
            }
        )])
    );
    let bytes = std::fs::read(&gemini_fixtures()[0].path).unwrap();
    let lines: Vec<&[u8]> = bytes
        .strip_suffix(b"\n")
        .unwrap()
        .split(|b| *b == b'\n')
        .collect();
    assert_eq!(item.source_session_fingerprint, chain(&lines));
}

#[test]
fn gemini_subagent_links_to_its_parents_tool_call_in_any_order() {
    let (items, _) = parse_all(&gemini_child());
    let item = one(&items);
    assert_eq!(item.source_session_id, GB);
    assert_eq!(
        serde_json::to_value(&item.session).unwrap(),
        json!({
            "createdAtMs": ga(1, 3), "updatedAtMs": ga(1, 30), "model": "gemini-2.5-flash",
            "provider": "google", "project": "proj-a", "isSubagent": true,
            "parentSourceSessionId": GA,
            "metadata": {"projectHash": "ph-a", "kind": "subagent", "directories": ["/work/a"]}
        })
    );
    assert_eq!(
        turns(item),
        vec![(
            s("su1"),
            None,
            ga(1, 3),
            Some(ga(1, 30)),
            o("gemini-2.5-flash"),
            [Some(500), Some(40), Some(0), None, Some(12), Some(552)],
            o("sg1"),
            vec![s("su1")]
        )]
    );

    // The child is read first: it goes out unlinked and is remembered; reading the parent
    // reveals the link (matched on the child's file stem = the parent's `agentId`).
    let child = gemini_child();
    let parent = &gemini_fixtures()[0];
    let cursor = FileCursor {
        sent_own: None,
        v: 1,
        dev: 0,
        ino: 0,
        size: 0,
        mtime_ms: 0,
        head_len: 0,
        head: String::new(),
        offset: 0,
        edge: String::new(),
        open_turn_offset: 0,
        fingerprint: String::new(),
        mapping: 1,
        copies: None,
    };
    let mut lineage = Lineage::default();
    let mut early = items.clone();
    assert_eq!(lineage.fill(&child, &mut early, &cursor), "");
    assert_eq!(early[0].session.spawn_tool_call_id, None);
    let (parent_items, parent_parser) = parse_all(parent);
    let resend = lineage.record(parent, &parent_items, parent_parser.as_ref());
    assert_eq!(resend.len(), 1);
    assert_eq!(resend[0].0.path, child.path);
    let mut late = items.clone();
    assert_ne!(lineage.fill(&child, &mut late, &cursor), "");
    let s = &late[0].session;
    assert_eq!(s.spawn_tool_call_id.as_deref(), Some("call-agent-1"));
    assert_eq!(s.task_description.as_deref(), Some("Investigate tests"));
    assert_eq!(s.task_status.as_deref(), Some("completed"));
    assert_eq!(
        parent_items[0].tool_calls[1]
            .spawned_source_session_id
            .as_deref(),
        Some(GB)
    );
}

#[test]
fn gemini_rewind_and_history_replacement_keep_rows_and_branch_turns() {
    let (items, p) = parse_all(&gemini_fixtures()[2]);
    let item = one(&items);
    assert_eq!(item.source_session_id, GC);
    assert_eq!(item.session.created_at_ms, Some(gb(0, 0)));
    assert_eq!(item.session.updated_at_ms, Some(gb(5, 0)));
    assert_eq!(item.session.model.as_deref(), Some("gemini-2.5-flash"));
    let pro = || o("gemini-2.5-pro");
    assert_eq!(
        turns(item),
        vec![
            (
                s("u1"),
                None,
                gb(0, 1),
                Some(gb(0, 2)),
                pro(),
                [Some(100), Some(10), Some(0), None, Some(0), Some(110)],
                o("g1"),
                vec![s("u1")]
            ),
            // Rewound (`$rewindTo` u2, inclusive): an abandoned branch, rows kept.
            (
                s("u2"),
                o("u1"),
                gb(1, 0),
                Some(gb(1, 5)),
                pro(),
                [Some(150), Some(20), Some(50), None, Some(0), Some(220)],
                o("g2"),
                vec![s("u2")]
            ),
            // The re-edited prompt branches from the turn before the target.
            (
                s("u3"),
                o("u1"),
                gb(2, 0),
                Some(gb(2, 5)),
                pro(),
                [Some(210), Some(30), Some(0), None, Some(5), Some(245)],
                o("g3"),
                vec![s("u3")]
            ),
            // New in the `$set.messages` history: branches from the head it replaced.
            (
                s("c1"),
                o("u3"),
                gb(3, 0),
                Some(gb(3, 0)),
                None,
                [None; 6],
                o("c2"),
                vec![s("c1")]
            ),
            (
                s("u4"),
                o("u3"),
                gb(4, 0),
                Some(gb(4, 3)),
                o("gemini-2.5-flash"),
                [Some(50), Some(5), Some(250), None, Some(0), Some(305)],
                o("g4"),
                vec![s("u4")]
            ),
            // After a rewind to an unknown id the history is empty: a notice opens a root turn.
            (
                s("e1"),
                None,
                gb(5, 0),
                Some(gb(5, 0)),
                None,
                [None; 6],
                None,
                vec![]
            ),
        ]
    );
    let rows: Vec<(String, String, String, Option<String>, i64)> = item
        .messages
        .iter()
        .map(|m| {
            let turn = m.source_turn_id.clone().unwrap();
            (
                m.source_message_id.clone(),
                turn,
                m.role.clone(),
                m.content.clone(),
                m.sequence,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (s("u1"), s("u1"), s("user"), o("First question"), 0),
            (s("g1"), s("u1"), s("assistant"), o("First answer"), 1),
            (s("u2"), s("u2"), s("user"), o("Second question"), 2),
            (s("g2"), s("u2"), s("assistant"), o("Second answer"), 3),
            (
                s("u3"),
                s("u3"),
                s("user"),
                o("Second question, rephrased"),
                4
            ),
            // The `$set.messages` version replaced the first one.
            (s("g3"), s("u3"), s("assistant"), o("Better answer."), 5),
            (s("r1"), s("u3"), s("tool"), None, 8),
            (
                s("c1"),
                s("c1"),
                s("user"),
                o("<state_snapshot>summary</state_snapshot>"),
                6
            ),
            (s("c2"), s("c1"), s("assistant"), o("Got it."), 7),
            (s("u4"), s("u4"), s("user"), o("Next step"), 9),
            (s("g4"), s("u4"), s("assistant"), o("Done."), 10),
            (s("e1"), s("e1"), s("system"), o("Quota exceeded."), 11),
        ]
    );
    assert!(item.tool_calls.is_empty());
    assert_eq!((p.stats().lines, p.stats().malformed_lines), (13, 0));
    assert_eq!(skipped(p.as_ref()), vec![(s("message/invalid"), 1)]);
}

/// A rewrite of an old message re-sends its old turn's row (tokens of the rewritten message
/// counted once) and that message alone, plus the head turn's row; each row sent without all
/// its messages carries its tool call count (item rule 14, issue 12).
#[test]
fn gemini_rewrite_of_an_old_message_resends_its_turn_row_and_that_message() {
    let file = &gemini_fixtures()[2];
    let bytes = std::fs::read(&file.path).unwrap();
    let mut p = parser_for(file);
    p.push_lines(&bytes, 0, true);
    p.take_items();
    let g1 = r#"{"id":"g1","timestamp":"2026-04-02T09:00:02.000Z","type":"gemini","content":"First answer, edited","model":"gemini-2.5-pro","tokens":{"input":100,"output":12,"cached":0,"total":112}}"#;
    p.push_lines(format!("{g1}\n").as_bytes(), bytes.len() as u64, true);
    let items = p.take_items();
    let item = one(&items);
    let ids: Vec<String> = item
        .turns
        .iter()
        .map(|t| t.source_turn_id.clone())
        .collect();
    assert_eq!(
        ids,
        vec![s("u1"), s("e1")],
        "the touched turn and the head turn"
    );
    // g1 is older than g4: the session keeps g4's model.
    assert_eq!(item.session.model.as_deref(), Some("gemini-2.5-flash"));
    assert_eq!(item.turns[0].output_tokens, Some(12));
    assert_eq!(item.turns[0].total_tokens, Some(112));
    let msgs: Vec<String> = item
        .messages
        .iter()
        .map(|m| m.source_message_id.clone())
        .collect();
    assert_eq!(msgs, vec![s("g1")]);
    assert_eq!(
        item.messages[0].content.as_deref(),
        Some("First answer, edited")
    );
    let counts: Vec<Option<i64>> = item.turns.iter().map(|t| t.tool_call_count).collect();
    assert_eq!(counts, vec![Some(0), Some(0)]);
    assert!(p.take_items().is_empty());

    let mut off = bytes.len() as u64 + g1.len() as u64 + 1;
    let mut push = |p: &mut Box<dyn SessionParser>, line: &[u8]| -> Vec<String> {
        p.push_lines(&[line, b"\n"].concat(), off, true);
        off += line.len() as u64 + 1;
        let items = p.take_items();
        one(&items)
            .turns
            .iter()
            .map(|t| t.source_turn_id.clone())
            .collect()
    };
    // A rewind touches no turn, and neither does a `$set.messages` that rewrites its messages
    // unchanged: the item re-sends the header and the head turn only.
    let replay = bytes.split(|b| *b == b'\n').nth(8).unwrap();
    assert!(replay.starts_with(b"{\"$set\":{\"lastUpdated\""));
    assert_eq!(push(&mut p, b"{\"$rewindTo\":\"u4\"}"), vec![s("e1")]);
    assert_eq!(push(&mut p, replay), vec![s("e1")]);
    // The replay made r1 (turn u3) the history's head again: g5 joins u3, which becomes the
    // head turn. Its newer model changes the session's: c1 and e1, which have no model of
    // their own (the ledger gives them the session's), are re-sent with it.
    let g5 = br#"{"id":"g5","timestamp":"2026-04-02T09:05:01.000Z","type":"gemini","content":"Retrying.","model":"gemini-3-pro"}"#;
    assert_eq!(push(&mut p, g5), vec![s("u3"), s("c1"), s("e1")]);
    assert_eq!(
        push(&mut p, b"{}"),
        vec![s("u3")],
        "they went out with that model"
    );
}

/// Fed with `emit = false` and then asked for its header (a child whose link came later), a
/// document parser re-sends the header and head turn.
#[test]
fn gemini_rebuilt_state_resends_the_header() {
    for file in [document(), gemini_child()] {
        let bytes = std::fs::read(&file.path).unwrap();
        let mut p = parser_for(&file);
        p.push_lines(&bytes, 0, false);
        assert!(p.take_items().is_empty(), "{}", file.path.display());
        p.resend_header();
        let items = p.take_items();
        assert_eq!(one(&items).turns.len(), 1, "{}", file.path.display());
        assert!(p.take_items().is_empty());
    }
}

fn gemini_parsers() -> Vec<Box<dyn SessionParser>> {
    let mut out: Vec<Box<dyn SessionParser>> = gemini_fixtures().iter().map(parser_for).collect();
    out.push(parser_for(&document()));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random bytes and mutated fixture lines (values swapped for other JSON types, bytes
    /// flipped, lines cut) never panic, in logs and documents alike.
    #[test]
    fn gemini_bad_input_never_panics(
        noise in prop::collection::vec(any::<u8>(), 0..512),
        picks in prop::collection::vec((any::<prop::sample::Index>(), any::<usize>(), any::<u8>(), 0u8..4), 1..40)
    ) {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for f in gemini_fixtures().iter().chain([&document()]) {
            let bytes = std::fs::read(&f.path).unwrap();
            lines.extend(bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec));
        }
        let mut out = noise.clone();
        out.push(b'\n');
        for (idx, pos, byte, how) in picks {
            let mut l = idx.get(&lines).clone();
            match how {
                0 => l.truncate(pos % (l.len() + 1)),
                1 if !l.is_empty() => { let n = l.len(); l[pos % n] = byte; }
                2 => {
                    let swaps = ["null", "[]", "{}", "-1", "1e999", "\"\"", "true", "7"];
                    let text = String::from_utf8_lossy(&l).into_owned();
                    l = text.replace(":\"", &format!(":{}, \"y\":\"", swaps[pos % swaps.len()]))
                        .replace(":[", &format!(":{}, \"z\":[", swaps[byte as usize % swaps.len()]))
                        .into_bytes();
                }
                _ => {}
            }
            out.extend_from_slice(&l);
            out.push(b'\n');
        }
        for mut p in gemini_parsers() {
            p.push_lines(&out, 0, true);
            let _ = (p.take_items(), p.spawn_links(), p.open_turn_offset(), p.fingerprint());
            prop_assert_eq!(p.stats().lines as usize, out.iter().filter(|b| **b == b'\n').count());
        }
    }
}
