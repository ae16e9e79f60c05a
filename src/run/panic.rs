//! What a panic said: stages that catch a panic (a reader thread, a worker, a joined thread)
//! report it as a failure of the run, in words.

/// The panic's message, when it was given as a string.
pub fn message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => format!("panicked: {s}"),
        (_, Some(s)) => format!("panicked: {s}"),
        _ => "panicked".to_owned(),
    }
}
