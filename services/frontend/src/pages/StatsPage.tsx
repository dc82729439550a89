import { useQuery } from '@tanstack/react-query';

import { Empty, ErrorNotice, Loading } from '../components/Status';
import { useApi } from '../session';

export function StatsPage() {
  const api = useApi();
  const stats = useQuery({ queryKey: ['stats'], queryFn: api.stats.me });

  return (
    <section aria-labelledby="stats-heading">
      <h1 id="stats-heading">Your statistics</h1>
      {stats.isPending ? (
        <Loading label="Loading statistics…" />
      ) : stats.isError ? (
        <ErrorNotice error={stats.error} onRetry={() => void stats.refetch()} />
      ) : (
        <>
          <dl className="totals">
            <div>
              <dt>Messages sent</dt>
              <dd>{stats.data.total_messages}</dd>
            </div>
            <div>
              <dt>Active conversations</dt>
              <dd>{stats.data.active_conversations}</dd>
            </div>
          </dl>
          {stats.data.per_day.length === 0 ? (
            <Empty>No messages counted yet.</Empty>
          ) : (
            <div className="table-scroll">
              <table className="per-day">
                <caption>Messages per day</caption>
                <thead>
                  <tr>
                    <th scope="col">Day</th>
                    <th scope="col">Messages</th>
                  </tr>
                </thead>
                <tbody>
                  {stats.data.per_day.map((entry) => (
                    <tr key={entry.day}>
                      <td>{entry.day}</td>
                      <td>{entry.count}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}
