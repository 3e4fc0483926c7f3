//! `POST /ui/actions/{action}`: scale a Deployment, restart its rollout,
//! delete a pod, cordon or uncordon a node — through the same verbs and
//! validation as the API (compare-and-set on the version read).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use drover_proto::types::{Deployment, Node};
use drover_proto::{Kind, Resource};

use super::{Ui, error_page};
use crate::api::{ApiError, ErrorCode};

/// What an action changed, for the flash message, and where to go back.
struct Done {
    view: &'static str,
    message: String,
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> Result<&'a str, ApiError> {
    form.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::invalid(format!("the form field {name:?} is missing")))
}

fn not_found(what: String) -> ApiError {
    ApiError {
        code: ErrorCode::NotFound,
        message: format!("{what} not found"),
    }
}

/// Parses a replica count as the scale form sends it.
pub fn parse_replicas(v: &str) -> Result<i32, ApiError> {
    match v.trim().parse::<i32>() {
        Ok(n) if n >= 0 => Ok(n),
        Ok(n) => Err(ApiError::invalid(format!(
            "replicas: {n} is negative; use 0 or more"
        ))),
        Err(_) => Err(ApiError::invalid(format!(
            "replicas: {v:?} is not a whole number"
        ))),
    }
}

pub async fn handle(
    State(ui): State<Ui>,
    Path(action): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    match run(&ui, &action, &form).await {
        Ok(done) => Redirect::to(&format!(
            "/ui/{}?msg={}",
            done.view,
            super::pages::events::urlencoding(&done.message)
        ))
        .into_response(),
        Err(e) => error_page(&e),
    }
}

async fn run(ui: &Ui, action: &str, form: &HashMap<String, String>) -> Result<Done, ApiError> {
    let core = &ui.core;
    let deployment = |form: &HashMap<String, String>| -> Result<Deployment, ApiError> {
        let (ns, name) = (field(form, "namespace")?, field(form, "name")?);
        let o = core
            .store
            .get(Kind::Deployment, ns, name)
            .ok_or_else(|| not_found(format!("deployment {ns}/{name}")))?;
        Deployment::from_object(&o).map_err(|e| ApiError::invalid(e.to_string()))
    };
    match action {
        "scale" => {
            let replicas = parse_replicas(field(form, "replicas")?)?;
            let mut d = deployment(form)?;
            d.spec.replicas = replicas;
            core.update(d.to_object(), false).await?;
            Ok(Done {
                view: "workloads",
                message: format!("deployment {} scaled to {replicas}", d.name()),
            })
        }
        "restart" => {
            let mut d = deployment(form)?;
            d.spec.template.metadata.annotations.insert(
                "kubectl.kubernetes.io/restartedAt".into(),
                chrono::Utc::now().to_rfc3339(),
            );
            core.update(d.to_object(), false).await?;
            Ok(Done {
                view: "workloads",
                message: format!("deployment {} restarted", d.name()),
            })
        }
        "delete-pod" => {
            let (ns, name) = (field(form, "namespace")?, field(form, "name")?);
            core.delete(Kind::Pod, ns, name, None, "", None).await?;
            Ok(Done {
                view: "workloads",
                message: format!("pod {name} deleted"),
            })
        }
        "cordon" | "uncordon" => {
            let name = field(form, "node")?;
            let o = core
                .store
                .get(Kind::Node, "", name)
                .ok_or_else(|| not_found(format!("node {name}")))?;
            let mut n = Node::from_object(&o).map_err(|e| ApiError::invalid(e.to_string()))?;
            n.spec.unschedulable = action == "cordon";
            core.update(n.to_object(), false).await?;
            Ok(Done {
                view: "cluster",
                message: format!("node {name} {action}ed"),
            })
        }
        other => Err(not_found(format!("action {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_replicas;

    #[test]
    fn replicas_are_whole_non_negative_numbers() {
        assert_eq!(parse_replicas(" 5 ").unwrap(), 5);
        assert_eq!(parse_replicas("0").unwrap(), 0);
        assert!(
            parse_replicas("-1")
                .unwrap_err()
                .message
                .contains("negative")
        );
        assert!(
            parse_replicas("lots")
                .unwrap_err()
                .message
                .contains("not a whole number")
        );
        assert!(
            parse_replicas("1e9")
                .unwrap_err()
                .message
                .contains("replicas")
        );
    }
}
