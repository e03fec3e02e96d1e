//! The signing agent's audit log: one JSON object per line, appended to a
//! file of mode 0600 and synced to disk line by line, so a user can see
//! what used the identity. Never a secret: a line holds the time, the peer
//! (pid, uid, executable), the operation, the task id and the result.

use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The process on the other end of a connection, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its process id, where the platform reports one.
    pub pid: Option<u32>,
    /// Its effective user id.
    pub uid: u32,
    /// Its executable (`/proc/<pid>/exe`), when it can be read: a process
    /// that made itself non-dumpable (as credstore does) hides it from
    /// everyone but root, and then only `comm` is known.
    pub exe: Option<PathBuf>,
    /// Its command name (`/proc/<pid>/comm`), when known.
    pub comm: Option<String>,
}

impl Peer {
    /// Describes the peer of pid `pid` and uid `uid`, reading what `/proc`
    /// shows of it.
    pub fn describe(pid: Option<u32>, uid: u32) -> Peer {
        let exe = pid.and_then(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok());
        let comm = pid.and_then(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .ok()
                .map(|s| s.trim_end().chars().take(64).collect())
        });
        Peer {
            pid,
            uid,
            exe,
            comm,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "pid": self.pid,
            "uid": self.uid,
            "exe": self.exe.as_ref().map(|p| p.to_string_lossy().into_owned()),
            "comm": self.comm,
        })
    }
}

/// An append-only JSON-lines log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the log at `path` for appending. A
    /// symlink at the path, or an existing file that others may read or
    /// that belongs to another user, is refused.
    pub fn open(path: &Path) -> Result<AuditLog> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                credstore_platform::create_private_dir_all(parent)
                    .map_err(|e| Error::io("creating", parent, e))?;
            }
        }
        let file = credstore_platform::open_append_private(path).map_err(|e| {
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                Error::Symlink {
                    path: path.to_path_buf(),
                    fix: "remove the link and name a regular file for the audit log".into(),
                }
            } else {
                Error::io("opening the audit log", path, e)
            }
        })?;
        let own = credstore_platform::file_ownership(&file)
            .map_err(|e| Error::io("checking", path, e))?;
        if !own.owned_by_current_user {
            return Err(Error::InsecurePermissions {
                path: path.to_path_buf(),
                mode: own.mode,
                problem: "belongs to another user".into(),
                fix: credstore_platform::advice::take_ownership(path),
            });
        }
        if own.grants_group_or_other() {
            return Err(Error::InsecurePermissions {
                path: path.to_path_buf(),
                mode: own.mode,
                problem: "can be read or changed by other users".into(),
                fix: credstore_platform::advice::make_private(path),
            });
        }
        Ok(AuditLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line for a request: `op` by `peer`, for `task_id`,
    /// with `result` (`ok`, `refused`, or `error`) and, for an error, its
    /// kind. The line is written in one call and synced before this returns.
    pub fn request(
        &self,
        peer: Option<&Peer>,
        op: &str,
        task_id: Option<&str>,
        result: &str,
        error_kind: Option<&str>,
    ) -> Result<()> {
        self.request_with_url(peer, op, task_id, None, result, error_kind)
    }

    /// [`request`](AuditLog::request) with the auth API a `register-task`
    /// went to (or asked for), when there is one.
    pub fn request_with_url(
        &self,
        peer: Option<&Peer>,
        op: &str,
        task_id: Option<&str>,
        base_url: Option<&str>,
        result: &str,
        error_kind: Option<&str>,
    ) -> Result<()> {
        let mut line = json!({
            "time": now_rfc3339(),
            "event": "request",
            "peer": peer.map(Peer::to_json),
            "op": op,
            "task_id": task_id,
            "result": result,
        });
        if let Some(obj) = line.as_object_mut() {
            if let Some(url) = base_url {
                obj.insert("base_url".into(), json!(crate::text::shown(url)));
            }
            if let Some(kind) = error_kind {
                obj.insert("error_kind".into(), json!(kind));
            }
        }
        self.write(&line)
    }

    /// Appends one line for an event of the agent itself (`start`, `stop`)
    /// with its details (never a secret).
    pub fn event(&self, event: &str, details: Value) -> Result<()> {
        let mut line = json!({"time": now_rfc3339(), "event": event});
        if let (Some(obj), Value::Object(more)) = (line.as_object_mut(), details) {
            obj.extend(more);
        }
        self.write(&line)
    }

    fn write(&self, line: &Value) -> Result<()> {
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let mut f: &File = &file;
        f.write_all(&bytes)
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::io("writing the audit log", &self.path, e))
    }
}

/// Now, in RFC 3339 with fractional seconds, UTC.
fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn lines_are_json_appended_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        let peer = Peer::describe(Some(std::process::id()), 1000);
        log.request(Some(&peer), "assertion", Some("t-1"), "ok", None)
            .unwrap();
        log.request(None, "token", None, "error", Some("usage"))
            .unwrap();
        drop(log);
        let log = AuditLog::open(&path).unwrap();
        log.event("stop", json!({"reason": "signal"})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["op"], "assertion");
        assert_eq!(lines[0]["peer"]["pid"], std::process::id());
        assert!(lines[0]["peer"]["exe"].is_string());
        assert_eq!(lines[1]["error_kind"], "usage");
        assert_eq!(lines[2]["event"], "stop");
        let t = lines[0]["time"].as_str().unwrap();
        assert!(
            t.len() >= 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(AuditLog::open(&path).unwrap_err().exit_code(), 4);
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            AuditLog::open(&link).unwrap_err(),
            Error::Symlink { .. }
        ));
    }
}
