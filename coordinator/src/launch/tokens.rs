//! The tokens of a launch, and where each is kept, so every process gets only its own
//! role's token: the nodes the node token, the evaluation agents the agent token, the
//! launch itself (and whoever runs `status`/`stop`) the operator token.
//!
//! Where they come from, first match wins:
//! 1. `--token-file FILE`: one shared token for every role (a mounted secret; it must
//!    exist);
//! 2. `--tokens-dir DIR`: `node.token`, `agent.token`, `operator.token` there (mounted
//!    secrets; they must exist);
//! 3. the environment's `COORDINATOR_TOKEN`: one shared token (nothing is written);
//! 4. the work folder's `token` (one shared token, as launches made before roles);
//! 5. the work folder's `tokens/`: the three role tokens, each made when missing (32
//!    bytes of `/dev/urandom`, hex) with mode 0600 in a 0700 folder, and reused by the
//!    next launch there.

use super::LaunchError;
use crate::roles::{Credentials, Role};
use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where a launch's tokens are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFiles {
    /// One shared token, in this file (none: from the environment).
    Shared(Option<PathBuf>),
    /// One file per role in this folder ([`Role::token_file_name`]).
    PerRole(PathBuf),
}

/// The tokens of a launch and their files.
#[derive(Debug, Clone)]
pub struct LaunchTokens {
    /// What the coordinator accepts.
    pub credentials: Credentials,
    /// Where they are kept.
    pub files: TokenFiles,
}

impl LaunchTokens {
    /// The file that holds `role`'s token, if the token is in a file.
    pub fn file(&self, role: Role) -> Option<PathBuf> {
        match &self.files {
            TokenFiles::Shared(file) => file.clone(),
            TokenFiles::PerRole(dir) => Some(dir.join(role.token_file_name())),
        }
    }

    /// The token `role` uses.
    pub fn token(&self, role: Role) -> &str {
        self.credentials.token(role)
    }
}

/// The tokens of a launch in `work_dir` (see the module's order).
pub fn launch_tokens(
    work_dir: &Path,
    token_file: Option<&Path>,
    tokens_dir: Option<&Path>,
    env_token: Option<String>,
) -> Result<LaunchTokens, LaunchError> {
    if let Some(path) = token_file {
        let token = read_token(path)?.ok_or_else(|| missing(path))?;
        return shared(&token, Some(path.to_path_buf()));
    }
    if let Some(dir) = tokens_dir {
        let read = |role: Role| {
            let path = dir.join(role.token_file_name());
            read_token(&path)?.ok_or_else(|| missing(&path))
        };
        return per_role(
            [read(Role::Node)?, read(Role::Agent)?, read(Role::Operator)?],
            dir,
        );
    }
    if let Some(token) = env_token.filter(|t| !t.trim().is_empty()) {
        return shared(&token, None);
    }
    let legacy = work_dir.join("token");
    if let Some(token) = read_token(&legacy)? {
        tracing::info!(file = %legacy.display(), "using the work folder's one shared token (delete it to have a token per role made)");
        return shared(&token, Some(legacy));
    }
    let dir = work_dir.join("tokens");
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|source| LaunchError::Token {
            path: dir.clone(),
            source,
        })?;
    let made = |role: Role| {
        let path = dir.join(role.token_file_name());
        match read_token(&path)? {
            Some(token) => Ok(token),
            None => write_fresh_token(&path),
        }
    };
    per_role(
        [made(Role::Node)?, made(Role::Agent)?, made(Role::Operator)?],
        &dir,
    )
}

fn shared(token: &str, file: Option<PathBuf>) -> Result<LaunchTokens, LaunchError> {
    Ok(LaunchTokens {
        credentials: Credentials::shared(token)?,
        files: TokenFiles::Shared(file),
    })
}

fn per_role([node, agent, operator]: [String; 3], dir: &Path) -> Result<LaunchTokens, LaunchError> {
    Ok(LaunchTokens {
        credentials: Credentials::per_role(&node, &agent, &operator)?,
        files: TokenFiles::PerRole(dir.to_path_buf()),
    })
}

fn missing(path: &Path) -> LaunchError {
    LaunchError::Token {
        path: path.to_path_buf(),
        source: std::io::ErrorKind::NotFound.into(),
    }
}

/// A fresh random token (32 bytes of `/dev/urandom`, hex) written to a new file at
/// `path` with mode 0600.
fn write_fresh_token(path: &Path) -> Result<String, LaunchError> {
    let err = |source| LaunchError::Token {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(LaunchError::Random)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    writeln!(file, "{token}").map_err(err)?;
    Ok(token)
}

/// The token in `path`, trimmed; `None` when there is no such file.
fn read_token(path: &Path) -> Result<Option<String>, LaunchError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Err(LaunchError::EmptyToken(path.to_path_buf())),
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LaunchError::Token {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_fresh_folder_gets_three_private_role_tokens_reused_by_the_next_launch() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = launch_tokens(dir.path(), None, None, None).unwrap();
        assert!(!tokens.credentials.is_shared());
        assert_eq!(mode(&dir.path().join("tokens")), 0o700);
        for role in Role::ALL {
            let file = tokens.file(role).unwrap();
            assert_eq!(file, dir.path().join("tokens").join(role.token_file_name()));
            assert_eq!(mode(&file), 0o600, "{role}");
            let token = tokens.token(role);
            assert_eq!(token.len(), 64);
            assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
        }
        let again = launch_tokens(dir.path(), None, None, None).unwrap();
        assert_eq!(
            again.credentials, tokens.credentials,
            "the files are reused"
        );
        let other = tempfile::tempdir().unwrap();
        let elsewhere = launch_tokens(other.path(), None, None, None).unwrap();
        assert_ne!(elsewhere.token(Role::Node), tokens.token(Role::Node));
    }

    #[test]
    fn a_token_file_or_the_environment_gives_one_shared_token_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "from-secret\n").unwrap();
        let tokens = launch_tokens(dir.path(), Some(&secret), None, Some("env".into())).unwrap();
        assert_eq!(
            tokens.credentials,
            Credentials::shared("from-secret").unwrap()
        );
        assert_eq!(tokens.file(Role::Agent), Some(secret));
        let tokens = launch_tokens(dir.path(), None, None, Some(" env-token\n".into())).unwrap();
        assert_eq!(
            tokens.credentials,
            Credentials::shared("env-token").unwrap()
        );
        assert_eq!(tokens.file(Role::Node), None);
        assert!(!dir.path().join("token").exists() && !dir.path().join("tokens").exists());
        let missing = dir.path().join("missing");
        let err = launch_tokens(dir.path(), Some(&missing), None, None).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn a_tokens_folder_must_hold_three_different_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let mounted = dir.path().join("mounted");
        std::fs::create_dir(&mounted).unwrap();
        for role in [Role::Node, Role::Agent] {
            std::fs::write(mounted.join(role.token_file_name()), format!("{role}-t")).unwrap();
        }
        let err = launch_tokens(dir.path(), None, Some(&mounted), None).unwrap_err();
        assert!(err.to_string().contains("operator.token"), "{err}");
        std::fs::write(mounted.join("operator.token"), "node-t").unwrap();
        let err = launch_tokens(dir.path(), None, Some(&mounted), None).unwrap_err();
        assert!(err.to_string().contains("the same"), "{err}");
        std::fs::write(mounted.join("operator.token"), "operator-t").unwrap();
        let tokens = launch_tokens(dir.path(), None, Some(&mounted), None).unwrap();
        assert_eq!(tokens.token(Role::Operator), "operator-t");
    }

    #[test]
    fn an_earlier_launchs_shared_token_is_kept_and_an_empty_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "older\n").unwrap();
        let tokens = launch_tokens(dir.path(), None, None, None).unwrap();
        assert_eq!(tokens.credentials, Credentials::shared("older").unwrap());
        std::fs::write(dir.path().join("token"), "\n").unwrap();
        assert!(matches!(
            launch_tokens(dir.path(), None, None, None),
            Err(LaunchError::EmptyToken(_))
        ));
    }
}
