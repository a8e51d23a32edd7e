"""The hospital-side adapters: HL7 v2 over MLLP, FHIR, CSV and JSON into a durable
outbox, delivered to the hub over its public GraphQL contract (adapters/README.md)."""
