"""A general English ↔ Chinese lexicon of the words learners use about LLMs.

The course glossary (catalog.yaml) holds the *terms* (LoRA, 灾难性遗忘 …).
Questions also use plain domain words around them — "parameters", "deploy",
"browser", "filter", "three steps" — and in the Chinese notes those appear
only in Chinese. This list gives query expansion those words too. It is a
small bilingual dictionary of the field, written once for the whole course,
not per question: a word is here because it is common in LLM material.

Format: one entry per `;`, `English spellings = Chinese spellings`, commas
between variants (the first is the main one; Traditional forms follow).
"""

from __future__ import annotations

from functools import lru_cache

from llmtutor.knowledge.rag.glossary import GlossaryEntry

_LEXICON = """
model,models=模型; parameter,parameters,params=参数,參數; weight,weights=权重,權重; bias=偏置,偏差;
layer,layers=层,層; neuron,neurons=神经元,神經元; train,training,trained,trains=训练,訓練;
inference,infer=推理; dataset,datasets,data set=数据集,資料集; data=数据,資料; label,labels=标签,標籤;
loss=损失,損失; accuracy=准确率,準確率; metric,metrics=指标,指標; benchmark,benchmarks=基准,基準;
evaluate,evaluation,evaluating=评估,評估; optimizer,optimizers=优化器,優化器; learning rate=学习率,學習率;
batch,batch size=批次,批量,批大小; epoch,epochs=轮次,训练轮数; gradient,gradients=梯度;
matrix,matrices=矩阵,矩陣; vector,vectors=向量; rank=秩; dimension,dimensions=维度,維度;
token,tokens=标记,词元,token; vocabulary=词表,词汇表,詞彙表; sequence,sequences=序列;
context,context window=上下文,上下文窗口; length=长度,長度; memory,vram=内存,显存,記憶體;
gpu,gpus=显卡,GPU; speed,fast,faster=速度,快速; latency=延迟,延遲; throughput=吞吐量;
cost,costs,cheap,cheaper=成本,费用; precision=精度; bit,bits=位,比特; format,formats=格式;
file,files=文件,檔案; library,libraries=库,函式庫; framework,frameworks=框架; tool,tools=工具;
platform=平台; api=接口,API; server,servers=服务器,伺服器; cloud=云,云端,雲端;
phone,phones,mobile,smartphone,android,ios=手机,移动端,手機,移动设备; browser,browsers,web browser=浏览器,瀏覽器;
device,devices=设备,裝置; edge=边缘,邊緣; local,locally=本地; deploy,deployment,deploying=部署;
production=生产,生產; endpoint,endpoints=端点,端點; configuration,config=配置; instance,instances=实例;
container,containers=容器; pipeline,pipelines=流水线,管道; workflow=工作流; step,steps=步骤,步驟;
first=第一; three=三; method,methods,approach=方法; technique,techniques=技术,技巧,技術;
traditional=传统,傳統; example,examples=例子,示例,範例; application,applications,app,apps=应用,應用;
agent,agents=智能体,代理; prompt,prompts=提示,提示词; template,templates=模板; chat=聊天,对话;
answer,answers=答案,回答; question,questions=问题,問題; instruction,instructions=指令;
response,responses=响应,回应; output,outputs=输出,輸出; input,inputs=输入,輸入;
generate,generation,generating=生成; text=文本; document,documents=文档,文件;
retrieve,retrieval,retriever=检索,檢索; search=搜索,搜尋; query,queries=查询,查詢;
similarity,similar=相似度,相似; index,indexing=索引; store,storage=存储,儲存;
database,databases=数据库,資料庫; chunk,chunks,chunking=分块,块; split,splitting=拆分,切分;
filter,filtering,filters=过滤,過濾; duplicate,duplicates,deduplication=重复,去重; quality=质量,品質;
synthetic=合成; merge,merging=合并,合併; architecture=架构,架構; attention=注意力;
head,heads=头; encoder=编码器; decoder=解码器; embedding,embeddings=嵌入;
position,positional=位置; normalization=归一化,标准化; activation=激活; sampling=采样,取樣;
decoding,decode=解码,解碼; temperature=温度; compression,compress=压缩,壓縮; pruning=剪枝;
distillation=蒸馏,蒸餾; adapter,adapters=适配器; fine-tune,fine-tuning,finetune,fine-tuned=微调,微調;
pre-training,pretraining,pretrain,pre-train=预训练,預訓練; alignment,align=对齐,對齊;
preference,preferences=偏好; reward,rewards=奖励,獎勵; policy=策略; reinforcement learning=强化学习;
human feedback=人类反馈; safety,secure,security=安全; attack,attacks=攻击,攻擊; jailbreak=越狱;
injection=注入; backdoor=后门; privacy=隐私; hallucination,hallucinations=幻觉,幻覺;
multimodal,multi-modal=多模态,多模態; image,images=图像,图片,圖像; audio=音频; video=视频;
vision=视觉; speech=语音; expert,experts=专家,專家; leaderboard=排行榜; score,scores=分数,分數;
human=人类,人工; forget,forgetting=遗忘; efficient,efficiency=高效,效率; scaling law=缩放定律;
open source,open-source=开源,開源; paper,papers=论文,論文; course=课程,課程; roadmap=路线图;
notebook,notebooks=笔记本; math,mathematics=数学,數學; statistics=统计,統計; probability=概率,機率;
programming=编程,程式設計; network,networks=网络,網路; language=语言,語言; knowledge=知识,知識;
graph=图谱,图; reasoning=推理; memory footprint=内存占用; size=大小,尺寸; small=小型,小;
large=大型,大; open=开放,開放; multiple=多个; single=单个; run,running=运行,執行;
convert,conversion=转换,轉換; compute,computation=计算,計算; speedup,accelerate=加速;
hardware=硬件,硬體; consumer=消费级,消費級; structure,structured=结构,结构化; json=JSON;
test,testing=测试,測試; monitor,monitoring=监控,監控; cache,caching=缓存,快取; batching=批处理;
parallel,parallelism=并行,平行; distributed=分布式; cluster=集群; node,nodes=节点,節點;
sentence,sentences=句子; word,words=单词,词; character,characters=字符; translation,translate=翻译,翻譯;
summarization,summary=摘要,总结; classification,classify=分类,分類; stage,stages=阶段,階段;
objective=目标; function,functions=函数,函數; operation,operations=操作,运算; feature,features=特征,特徵;
problem,problems=问题; limitation,limitations=局限,限制; advantage,advantages,benefit,benefits=优势,优点;
difference,different,differ=区别,不同; catastrophic forgetting=灾难性遗忘,災難性遺忘; need,needed,require,required,requirement,requirements=需要,要求; compare,comparison=比较,比較; work,works=工作,原理;
"""


def _split(spellings: str) -> list[str]:
    return [s.strip() for s in spellings.split(",") if s.strip()]


@lru_cache(maxsize=1)
def lexicon_entries() -> tuple[GlossaryEntry, ...]:
    entries = []
    for item in _LEXICON.split(";"):
        if "=" not in item:
            continue
        english, chinese = (_split(side) for side in item.split("=", 1))
        if english and chinese:
            entries.append(
                GlossaryEntry(
                    en=english[0],
                    zh=chinese[0],
                    en_alt=tuple(english[1:]),
                    zh_alt=tuple(chinese[1:]),
                    kind="word",
                )
            )
    return tuple(entries)
