// Drives joblog's Dataverse-compatible Web API with the npm package
// `dynamics-web-api`, unchanged: only the base URL and the token are
// joblog's. Run by server/tests/dataverse.rs
// (a_third_party_dataverse_client_works_unchanged), which reads the JSON
// report printed on the last line.
//
// JOBLOG_URL: the server's root (http://127.0.0.1:PORT/); JOBLOG_TOKEN: a
// bearer token (an administrator's); JOBLOG_TARGET: a Ready job to cancel.
import { DynamicsWebApi } from "dynamics-web-api";

const api = new DynamicsWebApi({
  serverUrl: process.env.JOBLOG_URL,
  dataApi: { version: "9.2" },
  onTokenRefresh: async () => process.env.JOBLOG_TOKEN,
});

const report = {};

// retrieveMultiple with paging: every row, page after page (nextLink).
let ids = [];
let page = await api.retrieveMultiple({ collection: "asyncoperations", select: ["name", "statecode"], maxPageSize: 20 });
ids.push(...page.value.map((r) => r.asyncoperationid));
while (page.oDataNextLink) {
  page = await api.retrieveMultiple({ collection: "asyncoperations", select: ["name"], maxPageSize: 20 }, page.oDataNextLink);
  ids.push(...page.value.map((r) => r.asyncoperationid));
}
report.all = ids.length;
report.distinct = new Set(ids).size;

// count: without a filter it reads asyncoperations/$count, with one $count=true.
report.count_all = await api.count({ collection: "asyncoperations" });
report.count_filtered = await api.count({ collection: "asyncoperations", filter: "statecode eq 3 and operationtype eq 10" });

// retrieveAll with a filter and a count.
const filter = "statecode eq 3 and operationtype eq 10";
const counted = await api.retrieveMultiple({ collection: "asyncoperations", filter, count: true, select: ["name"], maxPageSize: 5 });
report.count = counted.oDataCount;
const all = await api.retrieveAll({ collection: "asyncoperations", filter, select: ["name", "completedon"], maxPageSize: 5 });
report.filtered = all.value.length;

// retrieve one row, then Cancel it (update sends If-Match: *).
const target = process.env.JOBLOG_TARGET;
const one = await api.retrieve({ collection: "asyncoperations", key: target, select: ["name", "statecode", "statuscode"] });
report.retrieved = one.name;
const updated = await api.update({
  collection: "asyncoperations",
  key: target,
  data: { statecode: 3, statuscode: 32 },
  returnRepresentation: true,
  select: ["statuscode"],
});
report.after_cancel = updated.statuscode;

// deleteRecord: the now Canceled row deleted (204); reading it again is 404.
await api.deleteRecord({ collection: "asyncoperations", key: target });
report.deleted = true;
try {
  await api.retrieve({ collection: "asyncoperations", key: target, select: ["name"] });
  report.after_delete = "still there";
} catch (e) {
  report.after_delete = e.status;
}

// The BulkDelete action.
const bulk = await api.callAction({
  actionName: "BulkDelete",
  action: {
    QuerySet: [
      {
        EntityName: "asyncoperation",
        ColumnSet: { AllColumns: true },
        Criteria: {
          FilterOperator: "And",
          Conditions: [
            { AttributeName: "operationtype", Operator: "Equal", Values: [{ Value: "10", Type: "System.Int32" }] },
            { AttributeName: "statecode", Operator: "Equal", Values: [{ Value: "3", Type: "System.Int32" }] },
            { AttributeName: "completedon", Operator: "OlderThanXDays", Values: [{ Value: "30", Type: "System.Int32" }] },
          ],
        },
      },
    ],
    JobName: "Cleanup from dynamics-web-api",
    SendEmailNotification: false,
    ToRecipients: [],
    CCRecipients: [],
    RecurrencePattern: "",
    StartDateTime: new Date(Date.now() + 86400000).toISOString(),
  },
});
report.bulk_job = bulk.JobId;

console.log(JSON.stringify(report));
