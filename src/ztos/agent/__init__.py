"""ztosd, the host agent: enrol, watch the controller, reconcile the data plane."""
