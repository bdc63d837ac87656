@echo off
rem 6) train AMP: train AMP (DFL's morphable model) on data_src/aligned and data_dst/aligned into
rem workspace/model; asks the model options on the first run. The morph factor is chosen when merging.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" train ^
    --training-data-src-dir "%WORKSPACE%\data_src\aligned" ^
    --training-data-dst-dir "%WORKSPACE%\data_dst\aligned" ^
    --model-dir "%WORKSPACE%\model" ^
    --model AMP ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
