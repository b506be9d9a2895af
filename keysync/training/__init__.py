"""Training of the KeySync models: Lightning module, freezing rules, schedules, callbacks, runner."""
