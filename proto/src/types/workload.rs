//! `apps/v1` Deployment and ReplicaSet.

use serde::{Deserialize, Serialize};

use super::{is_zero, resource};
use crate::Kind;
use crate::meta::{Condition, IntOrString, is_false};
use crate::selector::LabelSelector;
use crate::types::pod::PodTemplateSpec;

resource!(
    /// Declarative updates for pods through ReplicaSets.
    Deployment, Kind::Deployment, spec: DeploymentSpec, status: DeploymentStatus
);
resource!(
    /// Keeps a number of identical pods running.
    ReplicaSet, Kind::ReplicaSet, spec: ReplicaSetSpec, status: ReplicaSetStatus
);

fn one() -> i32 {
    1
}
fn ten() -> i32 {
    10
}
fn six_hundred() -> i32 {
    600
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    #[serde(default = "one")]
    pub replicas: i32,
    #[serde(default)]
    pub selector: LabelSelector,
    #[serde(default)]
    pub template: PodTemplateSpec,
    #[serde(default)]
    pub strategy: DeploymentStrategy,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_ready_seconds: i32,
    #[serde(default = "ten")]
    pub revision_history_limit: i32,
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    #[serde(default = "six_hundred")]
    pub progress_deadline_seconds: i32,
}

impl Default for DeploymentSpec {
    fn default() -> Self {
        DeploymentSpec {
            replicas: 1,
            selector: LabelSelector::default(),
            template: PodTemplateSpec::default(),
            strategy: DeploymentStrategy::default(),
            min_ready_seconds: 0,
            revision_history_limit: 10,
            paused: false,
            progress_deadline_seconds: 600,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentStrategyType {
    #[default]
    RollingUpdate,
    Recreate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStrategy {
    #[serde(rename = "type", default)]
    pub type_: DeploymentStrategyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateDeployment>,
}

impl Default for DeploymentStrategy {
    fn default() -> Self {
        DeploymentStrategy {
            type_: DeploymentStrategyType::RollingUpdate,
            rolling_update: Some(RollingUpdateDeployment::default()),
        }
    }
}

fn twenty_five_percent() -> IntOrString {
    IntOrString::String("25%".into())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateDeployment {
    #[serde(default = "twenty_five_percent")]
    pub max_surge: IntOrString,
    #[serde(default = "twenty_five_percent")]
    pub max_unavailable: IntOrString,
}

impl Default for RollingUpdateDeployment {
    fn default() -> Self {
        RollingUpdateDeployment {
            max_surge: twenty_five_percent(),
            max_unavailable: twenty_five_percent(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    #[serde(default)]
    pub observed_generation: i64,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub updated_replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub available_replicas: i32,
    #[serde(default)]
    pub unavailable_replicas: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetSpec {
    #[serde(default = "one")]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_ready_seconds: i32,
    #[serde(default)]
    pub selector: LabelSelector,
    #[serde(default)]
    pub template: PodTemplateSpec,
}

impl Default for ReplicaSetSpec {
    fn default() -> Self {
        ReplicaSetSpec {
            replicas: 1,
            min_ready_seconds: 0,
            selector: LabelSelector::default(),
            template: PodTemplateSpec::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetStatus {
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub fully_labeled_replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub available_replicas: i32,
    #[serde(default)]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
