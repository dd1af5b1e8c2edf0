"""Query Lambda (placeholder until the query issue lands): GET /api/CallData/OpenCalls/{ClubId}/{TechId}/ids."""
