"""Tests of deployments: real `hub serve` processes, replicas, shutdown."""
