"""Hospital-side connectors (HL7 v2 over MLLP, FHIR, CSV) and their durable outbox."""
