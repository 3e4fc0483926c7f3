//! Role-based access control as Kubernetes' RBAC authorizer does it: roles
//! are rules over verbs × resources, bindings give roles to users and
//! groups, cluster-wide (ClusterRoleBinding) or in one namespace
//! (RoleBinding). Anything not granted is denied. Pure logic.

mod policy;
mod roles;
#[cfg(test)]
mod tests;

use drover_proto::identity::Identity;

pub use policy::{PolicyError, parse_policy};
pub use roles::builtin_roles;

/// What a request wants to do, as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// `get`, `list`, `watch`, `create`, `update`, `delete`.
    pub verb: &'a str,
    /// A kind's plural, with a subresource: `pods`, `pods/status`, `pods/exec`.
    pub resource: &'a str,
    /// Empty for cluster-scoped objects and requests across all namespaces.
    pub namespace: &'a str,
}

/// One permission: each verb on each resource (`*` matches any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub resources: Vec<String>,
}

impl Rule {
    pub fn new(verbs: &[&str], resources: &[&str]) -> Rule {
        Rule {
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            resources: resources.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn allows(&self, a: &Attributes) -> bool {
        let any = |list: &[String], x: &str| list.iter().any(|i| i == "*" || i == x);
        any(&self.verbs, a.verb) && any(&self.resources, a.resource)
    }
}

/// A named set of rules (Kubernetes' ClusterRole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// Who a binding is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
}

impl Subject {
    fn matches(&self, who: &Identity) -> bool {
        match self {
            Subject::User(u) => *u == who.user,
            Subject::Group(g) => who.groups.iter().any(|x| x == g),
        }
    }
}

/// A role given to subjects everywhere (`namespace: None`) or in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub name: String,
    pub namespace: Option<String>,
    pub role: String,
    pub subjects: Vec<Subject>,
}

/// The request was not allowed; the message names what was missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", denial_message(.user, .attributes))]
pub struct Denied {
    pub user: String,
    pub attributes: OwnedAttributes,
}

/// [`Attributes`] kept in an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedAttributes {
    pub verb: String,
    pub resource: String,
    pub namespace: String,
}

fn denial_message(user: &str, a: &OwnedAttributes) -> String {
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    format!(
        "user {user:?} cannot {} resource {:?} {scope} (no role bound to the user or its groups allows it)",
        a.verb, a.resource
    )
}

/// Roles and bindings; answers whether an identity may do something.
#[derive(Debug, Clone)]
pub struct Authorizer {
    roles: Vec<Role>,
    bindings: Vec<Binding>,
}

impl Authorizer {
    /// The built-in roles and bindings plus `bindings` (from a policy file).
    pub fn new(bindings: Vec<Binding>) -> Authorizer {
        let mut all = roles::builtin_bindings();
        all.extend(bindings);
        Authorizer {
            roles: builtin_roles(),
            bindings: all,
        }
    }

    /// Names of the roles a binding may refer to.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|r| r.name.as_str())
    }

    pub fn authorize(&self, who: &Identity, a: &Attributes) -> Result<(), Denied> {
        let granted = self
            .bindings
            .iter()
            .filter(|b| b.subjects.iter().any(|s| s.matches(who)))
            // A RoleBinding grants only inside its namespace; a request
            // across all namespaces needs a ClusterRoleBinding.
            .filter(|b| b.namespace.as_deref().is_none_or(|ns| ns == a.namespace))
            .filter_map(|b| self.roles.iter().find(|r| r.name == b.role))
            .any(|role| role.rules.iter().any(|rule| rule.allows(a)));
        if granted {
            return Ok(());
        }
        Err(Denied {
            user: who.user.clone(),
            attributes: OwnedAttributes {
                verb: a.verb.to_string(),
                resource: a.resource.to_string(),
                namespace: a.namespace.to_string(),
            },
        })
    }
}
