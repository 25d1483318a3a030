//! Codex rollouts stored zstd-compressed (`rollout-*.jsonl.zst`), through the built binaries
//! (`aix emit | nex import replay`): every Codex fixture compressed gives the ledger its plain
//! file gives; a compressed rollout with its plain `.jsonl` beside it is not read (Codex reads
//! the plain one); a damaged one is a failed file the run counts and goes past; a second run
//! leaves the ledger as it was, and a compressed rollout whose bytes change updates its
//! session. The `/review` index reads compressed rollouts too.

use std::path::{Path, PathBuf};

use ruzstd::encoding::{CompressionLevel, compress_to_vec};

use crate::e2e_support::{
    Tree, assert_clean, backfill, canonical, files_under, first_difference, open,
};

fn codex_fixtures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    files_under(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codex"),
        &mut out,
    );
    out.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    assert!(out.len() >= 10, "Codex fixtures: {}", out.len());
    out
}

fn compressed(bytes: &[u8]) -> Vec<u8> {
    compress_to_vec(bytes, CompressionLevel::Fastest)
}

/// `name` with `.zst` appended.
fn zst(name: &std::ffi::OsStr) -> std::ffi::OsString {
    let mut z = name.to_owned();
    z.push(".zst");
    z
}

#[test]
fn compressed_codex_rollouts_give_the_ledger_their_plain_files_give() {
    let plain = Tree::new();
    let packed = Tree::new();
    for (i, src) in codex_fixtures().iter().enumerate() {
        let name = src.file_name().unwrap();
        let bytes = std::fs::read(src).unwrap();
        // Under day folders, as Codex writes them.
        let day = format!("2026/10/{:02}", 1 + i % 28);
        std::fs::create_dir_all(plain.codex().join(&day)).unwrap();
        std::fs::create_dir_all(packed.codex().join(&day)).unwrap();
        std::fs::write(plain.codex().join(&day).join(name), &bytes).unwrap();
        if i == 0 {
            // Both forms of one rollout: the plain one is read, the compressed one (here an
            // older, shorter copy) is not.
            std::fs::write(packed.codex().join(&day).join(name), &bytes).unwrap();
            let older = &bytes[..bytes.len() / 2];
            std::fs::write(packed.codex().join(&day).join(zst(name)), compressed(older)).unwrap();
        } else {
            std::fs::write(
                packed.codex().join(&day).join(zst(name)),
                compressed(&bytes),
            )
            .unwrap();
        }
    }
    // A damaged compressed rollout: counted as a failed file, the run goes on.
    std::fs::write(
        packed.codex().join(
            "2026/10/01/rollout-2026-10-01T00-00-00-01a1b0ff-0000-7000-8000-0000000000ff.jsonl.zst",
        ),
        b"(not zstd)",
    )
    .unwrap();

    let (lp, lz) = (plain.ledger("plain.db"), packed.ledger("packed.db"));
    let a = backfill(&plain, &lp);
    let b = backfill(&packed, &lz);
    assert_clean(&a);
    assert_clean(&b);
    assert_eq!(a.report.failed_files, 0);
    assert_eq!(b.report.failed_files, 1, "the damaged rollout is counted");
    assert!(a.report.imported >= 10, "{:?}", a.report);
    assert_eq!(b.report.imported, a.report.imported);
    let (want, got) = (canonical(&open(&lp)), canonical(&open(&lz)));
    assert!(want == got, "{}", first_difference(&got, &want));

    // `aix emit` again (it starts without cursors, so every file is read): nothing changed, no
    // session is imported or updated; then a compressed rollout is rewritten shorter (Codex
    // never does; any change reads it whole) and only its session is updated.
    let again = backfill(&packed, &lz);
    assert_clean(&again);
    assert_eq!(again.report.imported, 0, "{:?}", again.report);
    let after = canonical(&open(&lz));
    assert!(after == got, "{}", first_difference(&after, &got));
    let (i, src) = codex_fixtures()
        .into_iter()
        .enumerate()
        .find(|(i, _)| *i > 0)
        .unwrap();
    let day = packed.codex().join(format!("2026/10/{:02}", 1 + i % 28));
    let bytes = std::fs::read(&src).unwrap();
    let cut = bytes.len() / 2;
    let cut = cut + bytes[cut..].iter().position(|&b| b == b'\n').unwrap() + 1;
    std::fs::write(
        day.join(zst(src.file_name().unwrap())),
        compressed(&bytes[..cut]),
    )
    .unwrap();
    let shorter = backfill(&packed, &lz);
    assert_clean(&shorter);
    // The rewritten rollout's session changes; any other read finds its session unchanged.
    assert_eq!(shorter.report.imported, 0, "{:?}", shorter.report);
    assert!(shorter.report.upserted >= 1, "{:?}", shorter.report);
}

/// The `/review` index reads compressed rollouts too: a review read before its parent, whose
/// rollout is stored compressed, is linked to it (the index finds the parent's key in the
/// inflated lines when it reads the `sessions` directory).
#[test]
fn a_review_is_linked_to_a_parent_whose_rollout_is_compressed() {
    use nex::aix::sources::{FileRole, Provider, SourceFile, parser_with_indexes};
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codex/review");
    let parent_id = "019c7400-0000-7000-8000-000000000050";
    let parent_name = format!("rollout-2026-02-19T15-00-00-{parent_id}.jsonl");
    let child_name = "rollout-2026-02-19T15-53-21-019c74ac-b57f-7000-8000-000000000051.jsonl";
    let dir = tempfile::tempdir().unwrap();
    let day = dir.path().join("sessions/2026/02/19");
    std::fs::create_dir_all(&day).unwrap();
    let parent_bytes = std::fs::read(fixtures.join(&parent_name)).unwrap();
    std::fs::write(
        day.join(format!("{parent_name}.zst")),
        compressed(&parent_bytes),
    )
    .unwrap();
    std::fs::copy(fixtures.join(child_name), day.join(child_name)).unwrap();
    let child = SourceFile {
        provider: Provider::Codex,
        path: day.join(child_name),
        role: FileRole::Main,
        workspace: None,
    };
    let index = std::sync::Arc::new(nex::aix::codex_reviews::ReviewIndex::default());
    let mut p = parser_with_indexes(&child, None, Some(index));
    p.push_lines(&std::fs::read(&child.path).unwrap(), 0, true);
    let items = p.take_items();
    assert_eq!(
        items[0].session.parent_source_session_id.as_deref(),
        Some(parent_id)
    );
}
