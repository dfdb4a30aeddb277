//! `clavis backup` and `clavis restore`: an encrypted, consistent snapshot of a whole instance in
//! one file, and its restoration onto an empty instance (either store, either way).
//!
//! The snapshot is the instance copied (as `clavis migrate` does, inside one read transaction of
//! the source) into a temporary SQLite database, whose bytes are sealed with AES-256-GCM under a
//! fresh key wrapped by the master key. The file:
//!
//! ```text
//! CLAVIS-BACKUP 1\n
//! {"masterKeyId": …, "wrappedKey": base64, "createdAt": …, "tables": {…}, "auditRecords": n}\n
//! AES-256-GCM(SQLite image), associated data = the two lines above
//! ```
//!
//! so the header cannot be altered, nor the body moved under another header, without the restore
//! failing. Restoring needs the same master key (kept apart from backups, as the store is).

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

use clavis_core::{CoreError, Result};
use clavis_crypto::{DataKey, MasterKey};

use crate::migrate::{copy_instance, CopyReport};
use crate::SqlStore;

const MAGIC: &[u8] = b"CLAVIS-BACKUP 1\n";
const KEY_LABEL: &str = "clavis:backup-key";

/// What a backup holds.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    /// Rows per table.
    pub tables: Vec<(String, i64)>,
    /// Audit records (the chain verified on the snapshot before it was sealed).
    pub audit_records: i64,
    /// Bytes written.
    pub bytes: u64,
}

fn io(error: std::io::Error) -> CoreError {
    CoreError::Internal(format!("backup file: {error}"))
}

/// Writes an encrypted snapshot of `source` to `out` (written to a temporary file, then renamed).
pub async fn backup(source: &SqlStore, master: &MasterKey, out: &Path, created_at: &str) -> Result<BackupSummary> {
    let scratch = tempfile::tempdir().map_err(io)?;
    let image = scratch.path().join("snapshot.db");
    let snapshot = SqlStore::open(&format!("sqlite://{}", image.display())).await?;
    let report = copy_instance(source, &snapshot, false, |_, _| {}).await?;
    // One self-contained file: fold the write-ahead log into the database before reading it.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&snapshot.write).await.map_err(crate::backend_error)?;
    snapshot.close().await;
    let plaintext = std::fs::read(&image).map_err(io)?;
    let key_bytes = clavis_crypto::random::bytes::<32>();
    let data_key = DataKey::new("backup".into(), &key_bytes)?;
    let header = json!({
        "masterKeyId": master.id(),
        "wrappedKey": base64::engine::general_purpose::STANDARD.encode(master.wrap(&key_bytes, KEY_LABEL)),
        "createdAt": created_at,
        "tables": report.tables.iter().map(|(t, n)| (t.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "auditRecords": report.audit_records,
    });
    let mut preamble = MAGIC.to_vec();
    preamble.extend_from_slice(header.to_string().as_bytes());
    preamble.push(b'\n');
    let sealed = data_key.seal(&plaintext, &preamble);
    let partial = out.with_extension("partial");
    {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
        let mut file = file.open(&partial).map_err(io)?;
        file.write_all(&preamble).map_err(io)?;
        file.write_all(&sealed).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&partial, out).map_err(io)?;
    Ok(BackupSummary {
        tables: report.tables.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
        audit_records: report.audit_records,
        bytes: (preamble.len() + sealed.len()) as u64,
    })
}

/// Reads a backup's header without decrypting it.
pub fn header(file: &[u8]) -> Result<(Value, usize)> {
    let malformed = || CoreError::Invalid("not a Clavis backup (or a damaged one): the header does not parse".into());
    let rest = file.strip_prefix(MAGIC).ok_or_else(malformed)?;
    let end = rest.iter().position(|b| *b == b'\n').ok_or_else(malformed)?;
    let header: Value = serde_json::from_slice(&rest[..end]).map_err(|_| malformed())?;
    Ok((header, MAGIC.len() + end + 1))
}

/// Opens a backup's bytes: checks the header against `master`, unwraps the backup key and
/// decrypts the SQLite image (the header authenticated as associated data).
pub fn open(bytes: &[u8], master: &MasterKey) -> Result<(Value, Vec<u8>)> {
    let (header, body_at) = header(bytes)?;
    let key_id = header["masterKeyId"].as_str().unwrap_or_default();
    if key_id != master.id() {
        return Err(CoreError::Invalid(format!(
            "the backup was sealed under master key {key_id}, not {}; restore with the instance's master key",
            master.id()
        )));
    }
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(header["wrappedKey"].as_str().unwrap_or_default())
        .map_err(|_| CoreError::Invalid("the backup's wrapped key is malformed".into()))?;
    let key_bytes = master.unwrap_key(&wrapped, KEY_LABEL).map_err(|_| CoreError::Invalid("the backup's key does not open".into()))?;
    let data_key = DataKey::new("backup".into(), &key_bytes)?;
    let plaintext = data_key
        .open(&bytes[body_at..], &bytes[..body_at])
        .map_err(|_| CoreError::Invalid("the backup does not decrypt: it was altered or truncated".into()))?;
    Ok((header, plaintext))
}

/// Restores the backup in `file` onto `target`, which must hold no instance.
pub async fn restore(file: &Path, master: &MasterKey, target: &SqlStore) -> Result<CopyReport> {
    let bytes = std::fs::read(file).map_err(io)?;
    let (header, plaintext) = open(&bytes, master)?;
    let scratch = tempfile::tempdir().map_err(io)?;
    let image = scratch.path().join("snapshot.db");
    std::fs::write(&image, &plaintext).map_err(io)?;
    let snapshot = SqlStore::open(&format!("sqlite://{}", image.display())).await?;
    let restored = copy_instance(&snapshot, target, false, |_, _| {}).await;
    snapshot.close().await;
    let restored = restored?;
    let expected = header["auditRecords"].as_i64().unwrap_or(-1);
    if restored.audit_records != expected {
        return Err(CoreError::Internal(format!(
            "the restored audit chain has {} records, the backup says {expected}",
            restored.audit_records
        )));
    }
    Ok(restored)
}
