//! Deployment controller tests against the fake API and a fake clock.
