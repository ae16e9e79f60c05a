//! How a run lives as a process: the signals that stop it ([`stop`]), the lock that keeps two
//! runs of one target apart ([`lock`]), the progress it draws ([`progress`]), the threads it
//! starts ([`thread`]) and the panics it turns into errors ([`panic`]).

pub mod lock;
pub mod panic;
pub mod progress;
pub mod stop;
pub mod thread;
