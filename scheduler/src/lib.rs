//! Drover's scheduler: filter/score plugins over a cluster snapshot.
