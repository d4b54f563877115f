// With the wide-lanes stand-in (highway.h beside this file) there is one target, compiled once:
// nothing to re-include.
