// SIGINT/SIGTERM handling for the daemons: signals are blocked in every thread and collected
// synchronously by the main thread, so no code runs in a signal handler.
#pragma once

namespace kvpool::daemon {

/// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts later.
/// Call first thing in main().
void BlockShutdownSignals();
/// Waits until SIGINT or SIGTERM arrives and returns its number.
int WaitForShutdownSignal();

}  // namespace kvpool::daemon
