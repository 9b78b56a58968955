-- Argo CD health check for pgshift.dev/Migration (docs/gitops.md).
--
-- Install: argocd-cm, key `resource.customizations.health.pgshift.dev_Migration`, this file as
-- the value. It reads only the status contract (DESIGN.md): observedGeneration, the
-- conditions Ready / Complete / Reconciling / Stalled with their observedGeneration, and
-- status.gate. Argo CD runs custom checks without Lua's string library: plain operators only.
--
--   no status / older generation  -> Progressing  (pgshift has not looked at this spec yet)
--   Stalled=True                  -> Degraded     (a person is needed: status.recovery says how)
--   Ready=True                    -> Healthy      (the application may roll out; contract steps
--                                                  at the end may still wait for their gate)
--   Ready=False, held by a gate   -> Suspended    (approve, or open the gate: status.gate)
--   otherwise                     -> Progressing  (a Job runs or is about to)

local hs = {}

local function message(condition, fallback)
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return fallback
end

local status = obj.status
local generation = obj.metadata.generation
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for pgshift to report status"
  return hs
end
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for pgshift to observe generation " .. generation
  return hs
end

-- Conditions written for an older generation say nothing about this spec.
local conditions = {}
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if generation == nil or condition.observedGeneration == nil or condition.observedGeneration >= generation then
      conditions[condition.type] = condition
    end
  end
end
local ready = conditions["Ready"]
local complete = conditions["Complete"]
local stalled = conditions["Stalled"]
local reconciling = conditions["Reconciling"]

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = message(stalled, "Stalled: a person is needed (kubectl describe migration)")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  if complete ~= nil and complete.status == "True" then
    hs.message = message(complete, "Every migration is applied")
  else
    hs.message = message(complete, message(ready, "Ready; contract steps wait for their gate"))
  end
  return hs
end

-- A gate holds a step before the database is ready for this spec (BlockedByGate).
local blocked = (ready ~= nil and ready.reason == "BlockedByGate")
  or (reconciling ~= nil and reconciling.reason == "BlockedByGate")
local running = reconciling ~= nil and reconciling.status == "True" and not blocked
if not running and (blocked or status.gate ~= nil) then
  local fallback = "Held by a gate"
  if status.gate ~= nil and status.gate.message ~= nil then
    fallback = status.gate.message
  end
  hs.status = "Suspended"
  hs.message = message(ready, fallback)
  return hs
end

-- A restore finished: held until pgshift.dev/resume, whatever spec.suspend says.
if not running and ready ~= nil and ready.reason == "Restored" then
  hs.status = "Suspended"
  hs.message = message(ready, "Restored from a backup; resume with pgshift.dev/resume")
  return hs
end

if not running and obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = message(ready, "spec.suspend is true: pgshift starts no Job")
  return hs
end

hs.status = "Progressing"
hs.message = message(reconciling, message(ready, "pgshift is working on it"))
return hs
