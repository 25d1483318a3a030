//! The Gemini CLI legacy whole-file document: its exact items, and a document rewritten in
//! place read whole through `FileState` into a real ledger.

use std::time::{Duration, SystemTime};

use super::gemini::{document, gd, one};
use super::gemini_files::{DOC_D, full_import, gemini_source, import};
use super::*;
use crate::e2e_support::canonical;
use crate::import_support::ledger;
use nex::aix::cursor::FileCursor;
use nex::aix::default_parser_factory;
use nex::aix::file_state::{FileState, ReadKind};
use serde_json::json;

#[test]
fn gemini_legacy_document_is_one_record() {
    let file = document();
    let (items, p) = parse_all(&file);
    let item = one(&items);
    assert_eq!(
        item.source_session_id,
        "dddd0004-0000-4000-8000-000000000004"
    );
    assert_eq!(
        serde_json::to_value(&item.session).unwrap(),
        json!({
            "createdAtMs": gd(0, 0), "updatedAtMs": gd(0, 40), "model": "gemini-2.0-flash",
            "provider": "google", "project": "proj-c",
            "metadata": {"projectHash": "ph-c", "summary": "Legacy session"}
        })
    );
    let flash = || o("gemini-2.0-flash");
    assert_eq!(
        turns(item),
        vec![
            (
                s("u1"),
                None,
                gd(0, 1),
                Some(gd(0, 5)),
                flash(),
                [Some(300), Some(30), Some(100), None, Some(8), Some(438)],
                o("g1"),
                vec![s("u1")]
            ),
            (
                s("u2"),
                o("u1"),
                gd(0, 30),
                Some(gd(0, 40)),
                flash(),
                [Some(50), Some(5), Some(400), None, Some(0), Some(455)],
                o("g2"),
                vec![s("u2")]
            ),
        ]
    );
    assert_eq!(
        messages(item),
        vec![
            (s("u1"), s("u1"), s("user"), o("List the files."), None, 0),
            (
                s("g1"),
                s("u1"),
                s("assistant"),
                o("Two files."),
                o("Listing\nUse ls."),
                1
            ),
            (s("u2"), s("u2"), s("user"), o("Thanks"), None, 2),
            (s("n1"), s("u2"), s("system"), o("Session saved."), None, 3),
            (
                s("g2"),
                s("u2"),
                s("assistant"),
                o("You're welcome."),
                None,
                4
            ),
        ]
    );
    // A call without an id is named after its message and position.
    assert_eq!(
        tools(item),
        vec![
            (
                s("ls-1"),
                s("u1"),
                o("g1"),
                s("list_directory"),
                s("completed"),
                Some(gd(0, 4)),
                None
            ),
            (
                s("g1#1"),
                s("u1"),
                o("g1"),
                s("glob"),
                s("failed"),
                Some(gd(0, 5)),
                None
            ),
        ]
    );
    assert_eq!(item.tool_calls[1].error.as_deref(), Some("cancelled"));
    // 99 newlines, and a last line without one: the chain covers it.
    let bytes = std::fs::read(&file.path).unwrap();
    assert_ne!(bytes.last(), Some(&b'\n'));
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    assert_eq!(lines.len(), 100);
    assert_eq!(p.stats().lines, 100);
    assert_eq!(p.fingerprint(), chain(&lines));
    assert_eq!(item.source_session_fingerprint, chain(&lines));
    assert_eq!(p.open_turn_offset(), 0);

    // A truncated document is one malformed line and no item; a JSON value that is not a
    // conversation is an unknown record.
    let mut bad = parser_for(&file);
    bad.push_lines(&bytes[..bytes.len() / 2], 0, true);
    assert!(bad.take_items().is_empty());
    assert_eq!(bad.stats().malformed_lines, 1);
    let mut other = parser_for(&file);
    other.push_lines(b"[1, 2]", 0, true);
    assert!(other.take_items().is_empty());
    assert_eq!(skipped(other.as_ref()), vec![(s("unknown"), 1)]);
    assert_eq!(other.stats().malformed_lines, 0);
}

/// The fixture document with only its first `n` messages, pretty-printed without a final
/// newline (as the CLI wrote legacy sessions).
fn document_with(n: usize) -> Vec<u8> {
    let bytes = std::fs::read(fixture(&format!("gemini/tmp/{DOC_D}"))).unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    doc["messages"].as_array_mut().unwrap().truncate(n);
    serde_json::to_vec_pretty(&doc).unwrap()
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .unwrap();
}

#[test]
fn gemini_document_rewritten_in_place_is_read_whole() {
    let factory = default_parser_factory();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DOC_D);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let v1 = document_with(2);
    std::fs::write(&path, &v1).unwrap();
    set_mtime(&path, 60);
    let source = gemini_source(path.clone());
    let mut conn = ledger();

    let mut state = FileState::new(source.clone(), None);
    assert!(state.is_document());
    let u = state.update(&factory, false).unwrap().unwrap();
    assert_eq!((u.kind, u.part), (ReadKind::Whole, 0));
    assert_eq!(u.cursor.offset, v1.len() as u64);
    assert_eq!(u.cursor.size, v1.len() as u64);
    assert_eq!(u.cursor.open_turn_offset, 0);
    assert!(u.cursor.head_len > 0);
    assert_eq!(
        FileCursor::from_value(&u.cursor.to_value()).as_ref(),
        Some(&u.cursor),
        "a valid cursor value"
    );
    let lines: Vec<&[u8]> = v1.split(|b| *b == b'\n').collect();
    assert_eq!(u.cursor.fingerprint, chain(&lines));
    assert_eq!(turns(&u.items[0]).len(), 1);
    import(&mut conn, "v1", &u.items);
    let c1 = u.cursor;

    // Unchanged stat: nothing read, with the state in memory or from the cursor alone.
    assert!(state.update(&factory, false).unwrap().is_none());
    let mut fresh = FileState::new(source.clone(), Some(c1.clone()));
    assert!(!fresh.needs_read(false).unwrap());
    assert!(fresh.update(&factory, false).unwrap().is_none());
    // A child-style header re-send rebuilds the document from the cursor.
    let r = fresh.resend_header(&factory).unwrap().unwrap();
    assert_eq!((r.kind, r.items[0].turns.len()), (ReadKind::Resent, 1));

    // Rewritten in place with more messages: read whole again (a fresh parser).
    let v2 = document_with(5);
    std::fs::write(&path, &v2).unwrap();
    let mut fresh = FileState::new(source.clone(), Some(c1));
    assert!(fresh.needs_read(false).unwrap());
    let u = fresh.update(&factory, false).unwrap().unwrap();
    assert_eq!(u.kind, ReadKind::Whole);
    assert_eq!(u.cursor.offset, v2.len() as u64);
    let lines: Vec<&[u8]> = v2.split(|b| *b == b'\n').collect();
    assert_eq!(u.cursor.fingerprint, chain(&lines));
    assert_eq!(
        turns(&u.items[0])
            .iter()
            .map(|t| t.0.clone())
            .collect::<Vec<_>>(),
        vec![s("u1"), s("u2")]
    );
    import(&mut conn, "v2", &u.items);
    assert_eq!(canonical(&conn), full_import(DOC_D, &v2).0);

    // Same size, other content, later mtime: still read whole.
    let v3 = String::from_utf8(v2.clone())
        .unwrap()
        .replace("Two files.", "Six files.")
        .into_bytes();
    assert_eq!(v3.len(), v2.len());
    std::fs::write(&path, &v3).unwrap();
    set_mtime(&path, 0);
    let u2 = fresh.update(&factory, false).unwrap().unwrap();
    assert_eq!(
        u2.items[0].messages[1].content.as_deref(),
        Some("Six files.")
    );
    assert_ne!(u2.cursor.fingerprint, u.cursor.fingerprint);
    import(&mut conn, "v3", &u2.items);
    assert_eq!(canonical(&conn), full_import(DOC_D, &v3).0);
    assert_eq!(std::fs::read(&path).unwrap(), v3, "read-only");
}
