//! Who may call what on the control plane: the three roles (training nodes, evaluation
//! agents, operators), the tokens that prove them, and the table of the role each method
//! of the `Coordinator` service needs.
//!
//! A node's token cannot stop the job, read its status or lease evaluations; an agent's
//! cannot register as a node or report checkpoints; operator calls (`status`, `stop`,
//! `checkpoints`) need the operator's token. One shared token holds every role (a
//! one-person setup).

use proto::auth::token_matches;
use proto::wire::coordinator_server::SERVICE_NAME;
use std::fmt;

/// A kind of client of the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A training node (`worker join`): registers, heartbeats, joins rounds, reports
    /// checkpoints.
    Node,
    /// An evaluation agent (`worker eval agent`): leases evaluations, reports results.
    Agent,
    /// A person or tool watching and steering the job: status, checkpoints, stop.
    Operator,
}

impl Role {
    /// Every role, in the order their tokens are listed.
    pub const ALL: [Role; 3] = [Role::Node, Role::Agent, Role::Operator];

    /// The role's name in files, logs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Agent => "agent",
            Role::Operator => "operator",
        }
    }

    /// The file a launch keeps this role's token in (`node.token`, ...).
    pub fn token_file_name(self) -> String {
        format!("{}.token", self.name())
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The role a call's gRPC path (`/exiflang.coordinator.v1.Coordinator/Heartbeat`) needs;
/// `None` for `Ping` (any known token) and for a path outside the service (tonic answers
/// those UNIMPLEMENTED).
pub fn required_role(path: &str) -> Option<Role> {
    let method = path
        .strip_prefix('/')?
        .strip_prefix(SERVICE_NAME)?
        .strip_prefix('/')?;
    Some(match method {
        "RegisterNode" | "Heartbeat" | "JoinRendezvous" | "ReportCheckpoint" => Role::Node,
        "LeaseEval" | "RenewEvalLease" | "ReportEvalResult" => Role::Agent,
        "GetStatus" | "StopJob" => Role::Operator,
        _ => return None,
    })
}

/// The roles a caller proved (a token may hold several: the shared one holds all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles(u8);

impl Roles {
    /// Whether `role` is among them.
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Whether the caller proved no role (no token, or a wrong one).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Credentials that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A token is empty (or only white space).
    #[error("the {0} token is empty")]
    Empty(&'static str),
    /// Two roles were given the same token, which would hold both roles.
    #[error("the {0} and {1} tokens are the same: give each role its own token, or use one shared token for every role")]
    Reused(Role, Role),
    /// A token holds characters that cannot travel in gRPC metadata.
    #[error("the {0} token must be printable ASCII")]
    NotAscii(&'static str),
}

/// The tokens the coordinator accepts, and the roles each proves.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The token of each role of [`Role::ALL`], in that order.
    tokens: [String; 3],
}

impl Credentials {
    /// One token for every role.
    pub fn shared(token: &str) -> Result<Self, CredentialError> {
        let token = checked("shared", token)?;
        Ok(Self {
            tokens: [token.clone(), token.clone(), token],
        })
    }

    /// One token per role; no two alike.
    pub fn per_role(node: &str, agent: &str, operator: &str) -> Result<Self, CredentialError> {
        let tokens = [
            checked("node", node)?,
            checked("agent", agent)?,
            checked("operator", operator)?,
        ];
        for (i, a) in Role::ALL.iter().enumerate() {
            for (j, b) in Role::ALL.iter().enumerate().skip(i + 1) {
                if tokens[i] == tokens[j] {
                    return Err(CredentialError::Reused(*a, *b));
                }
            }
        }
        Ok(Self { tokens })
    }

    /// The token that proves `role`.
    pub fn token(&self, role: Role) -> &str {
        &self.tokens[role as usize]
    }

    /// Whether one token holds every role.
    pub fn is_shared(&self) -> bool {
        self.tokens[0] == self.tokens[1]
    }

    /// The roles an `authorization` header value (`Bearer <token>`) proves; compared in
    /// time independent of where a wrong token differs.
    pub fn roles_of(&self, header: Option<&[u8]>) -> Roles {
        Roles(
            Role::ALL
                .iter()
                .filter(|role| token_matches(header, self.token(**role)))
                .fold(0, |bits, role| bits | role.bit()),
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_shared() {
            "shared"
        } else {
            "per role"
        };
        write!(f, "Credentials({kind}, tokens hidden)")
    }
}

fn checked(role: &'static str, token: &str) -> Result<String, CredentialError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(CredentialError::Empty(role));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CredentialError::NotAscii(role));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> Vec<u8> {
        format!("Bearer {token}").into_bytes()
    }

    #[test]
    fn every_method_of_the_service_needs_exactly_one_role() {
        let path = |m: &str| format!("/{SERVICE_NAME}/{m}");
        let table = [
            ("RegisterNode", Role::Node),
            ("Heartbeat", Role::Node),
            ("JoinRendezvous", Role::Node),
            ("ReportCheckpoint", Role::Node),
            ("LeaseEval", Role::Agent),
            ("RenewEvalLease", Role::Agent),
            ("ReportEvalResult", Role::Agent),
            ("GetStatus", Role::Operator),
            ("StopJob", Role::Operator),
        ];
        for (method, role) in table {
            assert_eq!(required_role(&path(method)), Some(role), "{method}");
        }
        // The proto's service has exactly these methods: a new one must be placed.
        let proto = include_str!("../../proto/coordinator.proto");
        let rpcs = proto.matches("\n  rpc ").count();
        assert_eq!(rpcs, table.len() + 1, "a method of the proto has no role");
        // Ping: any known token.
        assert_eq!(required_role(&path("Ping")), None);
        for other in [
            "/grpc.health.v1.Health/Check".to_string(),
            path("Unknown"),
            format!("/{SERVICE_NAME}Evil/GetStatus"),
            "GetStatus".into(),
        ] {
            assert_eq!(required_role(&other), None, "{other}");
        }
    }

    #[test]
    fn each_role_token_proves_only_its_role_and_the_shared_one_proves_all() {
        let creds = Credentials::per_role("n-tok", "a-tok", "o-tok").unwrap();
        for role in Role::ALL {
            let roles = creds.roles_of(Some(&bearer(creds.token(role))));
            for other in Role::ALL {
                assert_eq!(roles.contains(other), other == role, "{role} vs {other}");
            }
        }
        assert!(creds.roles_of(Some(&bearer("x-tok"))).is_empty());
        assert!(creds.roles_of(None).is_empty());
        assert!(!creds.is_shared());

        let shared = Credentials::shared(" one\n").unwrap();
        assert!(shared.is_shared());
        let roles = shared.roles_of(Some(&bearer("one")));
        assert!(Role::ALL.iter().all(|r| roles.contains(*r)));
    }

    #[test]
    fn empty_reused_or_unprintable_tokens_are_refused_and_never_printed() {
        assert_eq!(
            Credentials::per_role("a", "b", "a"),
            Err(CredentialError::Reused(Role::Node, Role::Operator))
        );
        assert_eq!(
            Credentials::per_role("a", " ", "c"),
            Err(CredentialError::Empty("agent"))
        );
        assert_eq!(
            Credentials::shared("two words"),
            Err(CredentialError::NotAscii("shared"))
        );
        let shown = format!("{:?}", Credentials::per_role("n1", "a1", "o1").unwrap());
        assert!(
            !shown.contains("n1") && shown.contains("per role"),
            "{shown}"
        );
    }
}
