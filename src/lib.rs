//! flightdeck: a terminal cockpit for database-cluster upgrades.
