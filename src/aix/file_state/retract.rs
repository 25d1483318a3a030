//! Item rule 15 on the worker's side: the `retract` items a whole read of a file appends for
//! sessions the ledger holds from it and that the file no longer yields (its own session, now
//! other files' copies) or yields under another name (a newer mapping's).

use crate::aix::sources::SessionParser;
use crate::protocol::ImportSessionItem;

/// Item rule 15 for the file's own session (`SessionParser::sole_session`): after a whole read
/// whose items do not hold it, while an earlier read sent it (`sent`) and the file's lines are
/// partly or wholly other files' copies (`copies_digest`), appends the `retract` item of that
/// session to `items`. Updates `sent` (whether the ledger holds the session once `items` are
/// committed) and returns it for the cursor's `sent_own` (`None` for a file without a sole
/// session).
pub(super) fn own_session(
    parser: &dyn SessionParser,
    provider: &str,
    sent: &mut bool,
    whole: bool,
    items: &mut Vec<ImportSessionItem>,
) -> Option<bool> {
    let own = parser.sole_session()?;
    let yields = items.iter().any(|i| i.source_session_id == own);
    let retract = whole && !yields && *sent && parser.copies_digest().is_some();
    if retract {
        let fingerprint = parser.fingerprint();
        items.push(ImportSessionItem::retraction(provider, own, &fingerprint));
    }
    // What the ledger holds: a whole read that neither yields nor retracts leaves the rows.
    *sent = yields || (*sent && !retract);
    Some(*sent)
}

/// Item rule 15 after an upgrade: appends the `retract` item of each session the file's former
/// mapping named otherwise (`SessionParser::renamed_sessions`) whose current session `items`
/// hold. A file that yields nothing now retracts nothing: rows outlive a source that lost its
/// content.
pub(super) fn retract_renamed(
    parser: &dyn SessionParser,
    provider: &str,
    items: &mut Vec<ImportSessionItem>,
) {
    let renamed = parser.renamed_sessions();
    if renamed.is_empty() {
        return;
    }
    let fingerprint = parser.fingerprint();
    for (former, current) in renamed {
        let yields = |id: &str| {
            items
                .iter()
                .any(|i| i.source_session_id == id && !i.retract)
        };
        if yields(&current) && !yields(&former) {
            items.push(ImportSessionItem::retraction(
                provider,
                former,
                &fingerprint,
            ));
        }
    }
}
