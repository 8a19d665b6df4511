"""SQS request messages: parsing and building, tenant filtering, queue names, event-driven intake."""
